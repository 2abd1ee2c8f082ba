"""``/v1/live``: a WebSocket that takes a browser's webcam frames and microphone audio and streams back
the running emotion labels with their latency.

Protocol (all times are the client's media clock, seconds from the session's start)::

    client                                            server
    {"type": "start", "video": true, "audio": true,
     "text": false, "language": null,             ─►  text: also transcribe each utterance (language: a
     "all_faces": false}                                Whisper code; default detected); all_faces: list
                                                       every face (up to 4) in each event
                                                   ◄─ {"type": "loading"}  (first session: models load)
                                                   ◄─ {"type": "ready", "sample_rate": 16000, "fps": 5, ...}
    binary: 0x01 | float64 LE time | JPEG bytes    ─►  a camera frame captured at `time`
    binary: 0x02 | float64 LE time | int16 LE PCM  ─►  mono audio at "sample_rate" ending at `time`
                                                   ◄─ {"type": "event", "time", "label", "confidence",
                                                       "source", "face", "voice", "fused", "smoothed",
                                                       "latency_ms", "speech_fraction", "weights",
                                                       "uncertain"; with text: "text", "transcript",
                                                       "text_emotion_words"; with all_faces: "faces", each
                                                       {"track", "main", "box" (fractions of the frame),
                                                       "label", "confidence", "face"}}
    {"type": "stop"}                               ─►
                                                   ◄─ {"type": "summary", ...}  then the socket closes

``latency_ms`` is the server's time from a frame's (or audio piece's) arrival to its label; the
client can add the network by matching ``time`` with what it sent. Bad input answers
``{"type": "error", "code", "message"}`` and closes the socket (1008; 1013 when all live sessions
are taken, 1011 on a server failure).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from avemo.errors import AvemoError
from avemo.serve import engine
from avemo.serve.settings import Settings

VIDEO, AUDIO = 1, 2
MAX_FRAME_BYTES = 2_000_000
MAX_FRAME_SIDE = 1920
MAX_AUDIO_SECONDS = 1.0
_HEADER = struct.Struct("<Bd")
log = logging.getLogger(__name__)


class LiveInputError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding it; None when it is not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = int.from_bytes(data[i + 5:i + 7], "big")
            w = int.from_bytes(data[i + 7:i + 9], "big")
            return w, h
        i += 2 + length
    return None


def parse_piece(message: bytes, last: dict[int, float], max_seconds: float,
                sample_rate: int = 16000) -> tuple[int, float, Any] | None:
    """A binary message -> (kind, time, JPEG bytes | float32 samples at ``sample_rate``, the rate the session's
    "ready" message announced); None for a piece to skip (not newer than the last of its kind);
    :class:`LiveInputError` for a malformed one."""
    if len(message) <= _HEADER.size:
        raise LiveInputError("bad_message", "a binary message is 1 type byte, an 8-byte time, then data")
    kind, t = _HEADER.unpack_from(message)
    payload = message[_HEADER.size:]
    if kind not in (VIDEO, AUDIO):
        raise LiveInputError("bad_message",
                             f"unknown piece type {kind} (1: JPEG frame, 2: int16 audio at {sample_rate} Hz)")
    if not (math.isfinite(t) and 0 <= t <= max_seconds + 60):
        raise LiveInputError("bad_time", f"piece time {t!r} is not a time in seconds within the session")
    if t <= last.get(kind, -1.0):
        return None
    if kind == VIDEO:
        if len(payload) > MAX_FRAME_BYTES:
            raise LiveInputError("too_large", f"a frame is larger than {MAX_FRAME_BYTES} bytes")
        size = jpeg_size(payload)
        if size is None:
            raise LiveInputError("bad_frame", "a video piece is not a JPEG image")
        if max(size) > MAX_FRAME_SIDE or min(size) < 16:
            raise LiveInputError("bad_frame", f"a frame of {size[0]}x{size[1]} pixels; send 16 to "
                                              f"{MAX_FRAME_SIDE} pixels a side")
        data: Any = payload
    else:
        if len(payload) % 2 or len(payload) > 2 * sample_rate * MAX_AUDIO_SECONDS:
            raise LiveInputError("bad_audio", f"an audio piece is int16 samples, at most {MAX_AUDIO_SECONDS:g} s")
        data = np.frombuffer(payload, "<i2").astype(np.float32) / 32768.0
    last[kind] = t
    return kind, t, data


async def live_session(ws: WebSocket, settings: Settings, slots: asyncio.Semaphore) -> None:
    """Serve one accepted WebSocket until the client stops or leaves."""
    if slots.locked():
        await _close(ws, "busy", f"all {settings.live_sessions} live sessions are in use; try again later", 1013)
        return
    async with slots:
        try:
            start = json.loads(await asyncio.wait_for(ws.receive_text(), timeout=30.0))
            if not isinstance(start, dict) or start.get("type") != "start":
                raise ValueError
            video, audio = bool(start.get("video", True)), bool(start.get("audio", True))
            text, language = bool(start.get("text", False)), start.get("language")
            all_faces = bool(start.get("all_faces", False))
            if language is not None and not isinstance(language, str):
                raise ValueError
        except (TimeoutError, ValueError, TypeError, KeyError):
            await _close(ws, "bad_message", 'the first message must be {"type": "start", "video": true, "audio": true}')
            return
        except WebSocketDisconnect:
            return
        if not (video or audio):
            await _close(ws, "bad_message", "a live session needs video, audio or both")
            return
        if language is not None and not text:
            await _close(ws, "bad_message", "language applies to text (the transcript's language); add \"text\": true")
            return
        await ws.send_json({"type": "loading"})
        analyzer = await run_in_threadpool(engine.live_analyzer)
        if text:
            try:  # loaded once (the first text session waits for Whisper), an unknown language refused here
                await run_in_threadpool(analyzer.text_model, language)
            except AvemoError as exc:
                await _close(ws, "bad_message", str(exc))
                return
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()
        feed = engine.LiveFeed(
            analyzer, video=video, audio=audio, max_seconds=settings.live_max_s, text=text, language=language,
            all_faces=all_faces and video,
            on_event=lambda ev: loop.call_soon_threadsafe(out.put_nowait, ("event", ev)),
            on_end=lambda summary, error: loop.call_soon_threadsafe(out.put_nowait, ("end", summary, error)))
        feed.start()
        await ws.send_json({"type": "ready", "sample_rate": feed.sample_rate, "fps": analyzer.fps,
                            "hop": analyzer.hop, "window": analyzer.window, "models": analyzer.model_names,
                            "text": text and audio, "all_faces": all_faces and video,
                            "max_seconds": settings.live_max_s})
        sender = asyncio.create_task(_send_events(ws, out))
        receiver = asyncio.create_task(_receive_pieces(ws, feed, settings))
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                ending = receiver.result()
                feed.close()
                if isinstance(ending, LiveInputError):
                    sender.cancel()
                    await _close(ws, ending.code, ending.message)
                elif ending == "stop":
                    await asyncio.wait_for(sender, timeout=30.0)  # the summary, then the socket closes
            else:
                receiver.cancel()
        except Exception:  # the client left mid-way (send on a closed socket) or the summary was late
            log.debug("live session ended early", exc_info=True)
        finally:
            feed.close()
            for task in (sender, receiver):
                task.cancel()
            await run_in_threadpool(feed.join, 10.0)
            if ws.application_state == WebSocketState.CONNECTED:
                await ws.close()


async def _receive_pieces(ws: WebSocket, feed: engine.LiveFeed, settings: Settings) -> str | LiveInputError:
    """Hand the client's pieces to the feed until it says ``"stop"``, leaves (``"gone"``) or sends
    something bad (the error)."""
    last: dict[int, float] = {}
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return "gone"
        if message["type"] == "websocket.disconnect":
            return "gone"
        if message.get("bytes") is not None:
            try:
                piece = parse_piece(message["bytes"], last, settings.live_max_s, feed.sample_rate)
            except LiveInputError as exc:
                return exc
            if piece is not None:
                kind, t, data = piece
                (feed.push_frame if kind == VIDEO else feed.push_audio)(t, data)
        elif message.get("text") is not None:
            try:
                doc = json.loads(message["text"])
            except ValueError:
                return LiveInputError("bad_message", "a text message must be JSON")
            if isinstance(doc, dict) and doc.get("type") == "stop":
                return "stop"


async def _send_events(ws: WebSocket, out: asyncio.Queue) -> None:
    while True:
        item = await out.get()
        if item[0] == "event":
            await ws.send_json({"type": "event", **item[1]})
            continue
        _, summary, error = item
        if error is not None:
            await _close(ws, "live_failed", error, 1011)
        else:
            await ws.send_json({"type": "summary", **summary})
            await ws.close()
        return


async def _close(ws: WebSocket, code: str, message: str, close_code: int = 1008) -> None:
    try:
        await ws.send_json({"type": "error", "code": code, "message": message})
        await ws.close(close_code)
    except (WebSocketDisconnect, RuntimeError):
        pass

"""Receiving an upload: the request body streamed to a file with a generated name, its size bounded.

Two forms are accepted on ``POST /v1/analyze``:

- ``multipart/form-data`` with the media in a part named ``file`` (``curl -F file=@talk.mp4``);
- the raw bytes as the body with any other content type (``curl --data-binary @talk.mp4 -H
  'Content-Type: application/octet-stream'``), the file name optionally in ``?filename=``.

The client's file name is kept for display only (its last path component, printable characters,
at most 200 of them); it never becomes a path. The size is checked against ``Content-Length``
before reading and counted while reading, so an oversized upload is refused without being stored.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from avemo.serve.errors import ApiError

FIELD = "file"


@dataclass(frozen=True)
class Received:
    path: Path
    filename: str
    size: int


def display_name(raw: str | None) -> str:
    """A client-supplied file name made safe to show: last component, no control characters."""
    name = re.split(r"[/\\]", raw or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:200]
    return name or "upload"


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the upload is larger than the limit of {limit / 1e6:g} MB",
                    limit_bytes=limit)


async def receive_upload(request: Request, dest: Path, max_bytes: int) -> Received:
    """Stream the request's media into ``dest``; :class:`ApiError` for an empty, oversized, malformed
    or incomplete upload (``dest`` is then removed)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "bad_request", "the Content-Length header is not a number")
        if int(length) > max_bytes + 64 * 1024:  # a multipart body carries a little more than the file
            raise too_large(max_bytes)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    try:
        with open(dest, "wb") as out:
            if ctype == b"multipart/form-data":
                boundary = params.get(b"boundary")
                if not boundary:
                    raise ApiError(400, "bad_request", "multipart/form-data without a boundary")
                filename, size = await _multipart(request, boundary, out, max_bytes)
            else:
                filename, size = request.query_params.get("filename"), 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise too_large(max_bytes)
                    out.write(chunk)
        if size == 0:
            raise ApiError(400, "empty_upload", "the upload is empty (0 bytes)")
        return Received(dest, display_name(filename), size)
    except ClientDisconnect:
        dest.unlink(missing_ok=True)
        raise ApiError(400, "incomplete_upload", "the client disconnected before the upload was complete") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


async def _multipart(request: Request, boundary: bytes, out, max_bytes: int) -> tuple[str | None, int]:
    """Write the ``file`` part of a multipart body to ``out``; (its file name, its size)."""
    state = {"in_file": False, "seen_file": False, "filename": None, "size": 0, "ended": False, "over": False}
    header: dict[str, bytes] = {"field": b"", "value": b""}
    headers: dict[bytes, bytes] = {}

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        headers[header["field"].strip().lower()] = header["value"].strip()
        header["field"], header["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        state["in_file"] = disp.get(b"name") == FIELD.encode() and not state["seen_file"]
        if state["in_file"]:
            state["seen_file"] = True
            raw = disp.get(b"filename")
            state["filename"] = raw.decode("utf-8", "replace") if raw is not None else None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"] and not state["over"]:
            state["size"] += end - start
            if state["size"] > max_bytes:
                state["over"] = True
                return
            out.write(data[start:end])

    def on_part_end() -> None:
        state["in_file"] = False

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if state["over"]:
                raise too_large(max_bytes)
        parser.finalize()
    except ValueError as exc:  # python-multipart's parse errors
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
    if not state["seen_file"]:
        raise ApiError(400, "bad_request", f"no file in the form: send the media in a part named {FIELD!r} "
                                           "(curl -F file=@video.mp4)")
    if not state["ended"]:
        raise ApiError(400, "incomplete_upload", "the multipart body ends before its closing boundary "
                                                 "(the upload was cut short)")
    with contextlib.suppress(Exception):
        out.flush()
    return state["filename"], state["size"]

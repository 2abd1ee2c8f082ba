"""``avemo live``: a running emotion label from a webcam and microphone, a stream, or a file played
in real time; events optionally saved as JSON lines, latency statistics at the end."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "live emotion label from a webcam + microphone, a stream or a file played in real time"

_BARS = " ▁▂▃▄▅▆▇█"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="webcam",
                   help="webcam, webcam:N, /dev/videoN, a URL, or a media file (default: webcam)")
    p.add_argument("--mic", nargs="?", const="default", default=None, metavar="DEVICE",
                   help="with a webcam, also listen to a microphone: default, alsa:NAME or pulse:NAME")
    p.add_argument("--fps", type=float, default=5.0, help="face sampling rate (default 5)")
    p.add_argument("--hop", type=float, default=1.0, help="seconds between voice steps (default 1.0)")
    p.add_argument("--window", type=float, default=3.0, help="seconds of audio per voice step (default 3.0)")
    p.add_argument("--smooth", type=float, default=1.0,
                   help="time constant of the moving average, seconds; 0 for none (default 1.0)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="playback speed of files and streams (default 1.0: real time)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of media")
    p.add_argument("--out", default=None, metavar="EVENTS.jsonl", help="save every event as a JSON line")
    p.add_argument("--save", default=None, metavar="FOLDER",
                   help="at the end (Ctrl-C included) write the session as avemo analyze writes a file: "
                        "timeline.csv / .json / .png / .vtt, summary.json, and live.json (latency, frames)")
    p.add_argument("--plain", action="store_true", help="one plain line per event instead of a live panel")
    p.add_argument("--face-model", default=None, help="face bundle name or folder (default face.fervideo)")
    p.add_argument("--voice-model", default=None, help="voice bundle name or folder (default voice.multi6)")
    p.add_argument("--fusion-model", default=None, help="fusion bundle name (default fusion.reliability)")
    p.add_argument("--face-tta", choices=("none", "flip", "tencrop"), default=None,
                   help="face test-time views (default: the bundle's own; fewer views, less latency)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for the face and voice networks (default 1: fastest for one frame at a time)")
    p.add_argument("--text", action="store_true",
                   help="also transcribe each utterance (Whisper base, offline) and fuse its words' emotions, as "
                        "avemo analyze --text does (English text model; words count once the utterance ends)")
    p.add_argument("--language", default=None,
                   help="with --text: the speech's language as a Whisper code (en, de, ...); default detected")
    p.add_argument("--all-faces", action="store_true",
                   help="follow up to 4 faces: each event lists every face's track, box and label (the fused "
                        "label stays the main face's with the voice)")


def bars(probs: dict[str, float] | None) -> str:
    """``neu▁ cal  hap█ ...``: one block character per emotion."""
    if not probs:
        return ""
    return " ".join(f"{name[:3]}{_BARS[min(8, round(p * 8))]}" for name, p in probs.items())


def faces_text(ev: Any) -> str:
    """``faces: #0 happy 0.81 | #1* neutral 0.55`` (``*``: the main face) with ``all_faces``, else ``""``."""
    faces = getattr(ev, "faces", None)
    if faces is None:
        return ""
    each = [f"#{f['track'] if f['track'] is not None else '?'}{'*' if f['main'] else ''} {f['label']} "
            f"{f['confidence']:.2f}" for f in faces]
    return "faces: " + (" | ".join(each) or "none")


def event_line(ev: Any) -> str:
    """One terminal line for an event."""
    label = f"{ev.label:<9} {ev.confidence:.2f}" if ev.label else f"{'—':<9} {'':4}"
    words = f'  "{ev.transcript}"' if getattr(ev, "transcript", None) else ""
    faces = f"  {faces_text(ev)}" if getattr(ev, "faces", None) is not None else ""
    return f"{ev.time:7.2f}s  {label}  {ev.source:<5} {ev.latency_ms:6.0f} ms  {bars(ev.smoothed)}{words}{faces}"


def _panel(ev: Any):
    from rich.table import Table

    now = f"[bold]{ev.label.upper()}[/bold] {ev.confidence:.2f}" if ev.label else "no face, no speech"
    table = Table(title=f"avemo live — {ev.time:.2f} s   {now}   ({ev.source}, {ev.latency_ms:.0f} ms)",
                  show_header=True, header_style="bold")
    columns = {"face": ev.face, "voice": ev.voice, **({"text": ev.text} if ev.transcript is not None else {}),
               "smoothed": ev.smoothed}
    table.add_column("emotion")
    for col in columns:
        table.add_column(col, min_width=14)
    for name in (ev.smoothed or ev.face or ev.voice or {}):
        row = [f"[bold]{name}[/bold]" if name == ev.label else name]
        for probs in columns.values():
            p = probs.get(name) if probs else None
            row.append("" if p is None else f"{'█' * round(p * 12):<12} {p:.2f}")
        table.add_row(*row)
    captions = []
    if ev.transcript is not None:
        said = ev.transcript or "(no words)"
        captions.append(f'said: "{said}"' + ("" if ev.text_emotion_words else " (no feeling stated: not fused)"))
    if ev.faces is not None:
        captions.append(faces_text(ev) + "  (* the main face, the one fused)")
    table.caption = "\n".join(captions) or None
    return table


def _save(events: list, summary: Any, folder: Any, source: str) -> Any:
    """The session's events as a timeline, written as ``avemo analyze`` writes a file's, and the live summary."""
    import json

    from avemo.inference.batch import write_outputs
    from avemo.inference.result import EmotionTimeline

    timeline = EmotionTimeline.from_events(events, source=source)
    folder.mkdir(parents=True, exist_ok=True)
    if len(timeline):
        write_outputs(timeline, folder)
    (folder / "live.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return folder


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from avemo.errors import AvemoError
    from avemo.inference.live import LiveAnalyzer
    from avemo.media.live import check_source, parse_source

    check_source(parse_source(args.source, args.mic))  # a bad source fails before the models load
    if args.language and not args.text:
        raise AvemoError("--language applies to --text (the transcript's language); add --text")
    models = {k: v for k, v in (("face", args.face_model), ("voice", args.voice_model),
                                ("fusion", args.fusion_model)) if v}
    analyzer = LiveAnalyzer(models or "default", fps=args.fps, hop=args.hop, smooth=args.smooth,
                            window=args.window, threads=args.threads, face_tta=args.face_tta, text=args.text,
                            language=args.language, all_faces=args.all_faces)
    out = None
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        out = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    plain = args.plain or not sys.stdout.isatty()
    live = None
    if not plain:
        from rich.live import Live

        live = Live(refresh_per_second=10, transient=False)
        live.start()

    kept: list[Any] = []  # the events, for --save

    def on_event(ev: Any) -> None:
        if args.save:
            kept.append(ev)
        if out is not None:
            out.write(json.dumps(ev.to_dict()) + "\n")
        if live is not None:
            live.update(_panel(ev))
        else:
            print(event_line(ev), flush=True)

    try:
        summary = analyzer.run(args.source, on_event, args.duration, mic=args.mic, speed=args.speed)
    finally:
        if live is not None:
            live.stop()
        if out is not None:
            out.close()
    print(summary.format())
    if args.out:
        print(f"events: {args.out}")
    if args.save:
        print(f"session: {_save(kept, summary, Path(args.save), args.source)}/ (timeline.csv, timeline.png, ...)")
    return 130 if summary.interrupted else 0

"""``avemo batch``: many files into one Parquet dataset of timelines and a status table, locally or on Ray."""

from __future__ import annotations

import argparse

from avemo.commands.analyze import clock_time

HELP = "analyse many files (a folder, globs or a manifest) into one Parquet dataset, locally or on a Ray cluster"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="FOLDER_OR_MANIFEST",
                   help="folders (searched recursively), files, globs, http(s) URLs (downloaded into OUT/downloads "
                        "first), or manifests (.csv with a 'path' column, .txt with one path or URL per line)")
    p.add_argument("--out", required=True, help="output folder: timelines/ (Parquet, by file) and status.parquet")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: one process, file after file (default); ray: Ray Data with a pool of workers")
    p.add_argument("--address", help="ray: join this running cluster (auto, HOST:6379, ray://HOST:10001); "
                                     "without it a local Ray is started")
    p.add_argument("--workers", type=int, help="ray: workers in the pool, one CPU each (default: every CPU)")
    p.add_argument("--object-store-mb", type=int, help="ray, local start only: object store size in MB")
    p.add_argument("--force", action="store_true", help="redo files already finished")
    p.add_argument("--window", type=float, default=3.0, help="window length in seconds (default 3)")
    p.add_argument("--hop", type=float, default=1.0, help="step between windows in seconds (default 1)")
    p.add_argument("--fps", type=float, default=5.0, help="face sampling rate (default 5)")
    p.add_argument("--start", type=clock_time, default=0.0, metavar="TIME",
                   help="analyse from this point of each file: seconds, MM:SS or HH:MM:SS (default 0)")
    p.add_argument("--end", type=clock_time, default=None, metavar="TIME",
                   help="analyse up to this point (default: the end); the timelines keep the files' own times")
    p.add_argument("--all-faces", action="store_true", help="rows for every tracked face (a track column)")
    p.add_argument("--exact-faces", action="store_true",
                   help="MediaPipe on every sampled frame, full-quality decoding and both face views on every "
                        "frame (slower)")
    p.add_argument("--text", action="store_true",
                   help="also transcribe the speech offline (Whisper base) and give each window's words and their "
                        "emotions (text_* columns, as avemo analyze --text)")
    p.add_argument("--language", default=None,
                   help="with --text: the speech's language as a Whisper code (en, de, ...); default: detected")
    p.add_argument("--face-model", help="face bundle name or folder")
    p.add_argument("--voice-model", help="voice bundle name or folder")
    p.add_argument("--fusion-model", help="fusion bundle name or folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from avemo.errors import AvemoError
    from avemo.scale.batch import BatchSettings, RaySettings, collect_inputs, run_batch

    console = Console(stderr=True)
    if args.engine == "local" and (args.address or args.workers or args.object_store_mb):
        raise AvemoError("--address, --workers and --object-store-mb go with --engine ray")
    if args.workers is not None and args.workers < 1:
        raise AvemoError(f"--workers must be at least 1, got {args.workers}")
    urls: list[str] = []
    inputs = collect_inputs(args.inputs, urls)
    if not inputs and not urls:
        console.print("avemo batch: no media files found in the given inputs")
        return 2
    models = {k: v for k, v in (("face", args.face_model), ("voice", args.voice_model),
                                ("fusion", args.fusion_model)) if v}
    from avemo.inference.analyzer import EXACT_FACES

    if args.language and not args.text:
        raise AvemoError("--language applies to --text (the transcript's language); add --text")
    config = {"window": args.window, "hop": args.hop, "fps": args.fps, "all_faces": args.all_faces,
              **({"start": args.start} if args.start else {}), **({"end": args.end} if args.end is not None else {}),
              **({"text": True, "language": args.language} if args.text else {}),
              **(EXACT_FACES if args.exact_faces else {})}
    settings = BatchSettings(models, config)
    settings.analyzer()  # bad settings or bundle names fail here, once, not on every file
    if args.language:
        from avemo.text.transcribe import whisper_languages

        if args.language not in whisper_languages():
            raise AvemoError(f"--language: unknown language {args.language!r}; Whisper knows "
                             f"{', '.join(whisper_languages())}")
    count = {"n": 0}

    def on_file(record: dict) -> None:
        count["n"] += 1
        mark = "[green]done[/green]" if record["status"] == "done" else "[red]failed[/red]"
        line = f"[{count['n']}] {mark} {record['file']} ({record['seconds']:.1f} s)"
        console.print(line + (f"  {record['error']}" if record["error"] else ""))

    ray_settings = RaySettings(address=args.address, workers=args.workers, num_cpus=args.workers,
                               object_store_mb=args.object_store_mb)
    unfetched: dict[str, str] = {}
    if urls:  # downloaded once into OUT/downloads, then analysed as files
        from avemo.media.fetch import fetch_all

        fetched, unfetched = fetch_all(urls, Path(args.out) / "downloads", force=args.force,
                                       on_error=lambda url, exc: console.print(f"[red]failed[/red] {exc}"))
        inputs = list(dict.fromkeys([*fetched, *inputs]))
    try:
        result = run_batch(inputs, Path(args.out), settings, engine=args.engine, ray_settings=ray_settings,
                           force=args.force, on_file=on_file)
    except KeyboardInterrupt:  # each finished file was written as it finished
        console.print(f"interrupted ({count['n']} files finished in this run); every finished file is kept in "
                      f"{args.out}: run the same command again to go on (finished files are skipped)", soft_wrap=True)
        return 130
    done = sum(r["status"] == "done" for r in result.records)
    failed = len(result.failed) + len(unfetched)
    console.print(f"{done} analysed, {len(result.skipped)} already done, {failed} failed "
                  + (f"({len(unfetched)} not downloaded) " if unfetched else "") +
                  f"in {result.seconds:.1f} s -> {args.out}/timelines (Parquet), {args.out}/status.parquet")
    return 1 if failed else 0

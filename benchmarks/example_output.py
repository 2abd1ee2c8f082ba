"""The README's example output: ``avemo analyze`` on the shared RAVDESS clip of actor 19 (its video with
its own speech, looped to 12 s by :func:`avemo.bench.speed.build_test_video`), with the default
settings. Writes docs/example_timeline.png and prints the per-window table the README quotes.

    python benchmarks/example_output.py
"""

from __future__ import annotations

from pathlib import Path

from avemo.bench.speed import build_test_video
from avemo.commands.demo import format_timeline
from avemo.config import cache_root
from avemo.inference.analyzer import analyze


def main() -> None:
    video = build_test_video(12.0, cache_root() / "bench" / "talking_face_12s_720p.mp4")
    timeline = analyze(video)
    timeline.plot(Path("docs/example_timeline.png"))
    print(format_timeline(timeline))
    print(f"dominant emotion: {timeline.summary()['dominant']}")


if __name__ == "__main__":
    main()

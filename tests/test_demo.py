"""``avemo demo`` (what ``make demo`` runs) on the shared clips: the printed table and summary, and the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from avemo.cli import main


def test_demo_prints_windows_and_the_dominant_emotions_and_writes_the_files(
        clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = clips["cremad_hap"]
    assert main(["demo", str(clip), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "window" in out and "fused" in out and "weights" in out
    summary = next(line for line in out.splitlines() if line.startswith("dominant emotion:"))
    assert "face: " in summary and "voice: " in summary and "None" not in summary and "no speech" not in summary
    for name in ("timeline.csv", "summary.json"):
        assert (tmp_path / clip.stem / name).is_file()


def test_demo_says_no_speech_where_the_voice_has_nothing(
        clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = clips["ravdess_mp4"]  # no audio track: no window has a voice
    assert main(["demo", str(clip), "--out", str(tmp_path)]) == 0
    summary = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("dominant emotion:"))
    assert "voice: no speech" in summary and "None" not in summary


def test_demo_on_a_photo(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = data / "fer2013" / "test" / "happy" / "PrivateTest_10077120.jpg"
    assert main(["demo", str(photo), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{photo}: photo 48x48\n  faces: 1 found" in out and "face 1.00" in out
    assert (tmp_path / photo.stem / "timeline.png").is_file()


def test_inspect_a_photo(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2
    import numpy as np

    from avemo.faces import FaceScanner

    photo = data / "fer2013" / "test" / "happy" / "PrivateTest_10077120.jpg"
    assert main(["inspect", str(photo)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{photo}: photo 48x48\n  faces: 1 found") and "head pose (largest face): yaw" in out
    # no face found: whether `avemo analyze` reads the photo whole (a face crop) or not (a flat picture)
    monkeypatch.setattr(FaceScanner, "detect", lambda self, image, timestamp_ms=None: [])
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((48, 48, 3), 90, np.uint8))
    for path, whole in ((photo, True), (flat, False)):
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert "faces: none found" in out and ("reads the whole photo as a face crop" in out) == whole

"""The analyzer and `avemo analyze` on the shared real clips, with the shipped default bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from avemo.cli import main
from avemo.errors import AvemoError, MediaError
from avemo.inference.analyzer import Analyzer
from avemo.inference.result import EmotionTimeline, prob_columns
from avemo.labels import EMOTIONS


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer("default")


def _probs_ok(tl: EmotionTimeline, modality: str) -> np.ndarray:
    p = tl.probabilities(modality)
    rows = ~np.isnan(p).any(axis=1)
    assert np.allclose(p[rows].sum(axis=1), 1.0, atol=1e-4)
    assert (p[rows] >= 0).all()
    return rows


def test_the_analysis_runs_numpy_blas_on_one_thread_and_gives_it_back(analyzer, clips):
    """While a file is analysed numpy's BLAS has one thread (its spinning workers cost the face path a core); the
    caller's setting is back afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"}

    seen: list[set[int]] = []
    with threadpool_limits(limits=2, user_api="blas"):
        analyzer.analyze(clips["ravdess_mp4"], progress=lambda done, total: seen.append(blas_threads()))
        after = blas_threads()
    assert len(seen) >= 2 and all(s == {1} for s in seen[:-1])  # the last call comes after the paths have ended
    assert after == {2}


@pytest.mark.parametrize("name", ["cremad_ang", "cremad_hap", "cremad_sad"])
def test_cremad_clips_give_face_and_voice(analyzer, clips, name):
    tl = analyzer.analyze(clips[name])
    assert isinstance(tl, EmotionTimeline)
    for col in ["start", "end", "face", "speech", "source", "label", "confidence",
                *prob_columns("face"), *prob_columns("voice"), *prob_columns("fused")]:
        assert col in tl.columns
    assert tl["start"].iloc[0] == 0.0 and tl["end"].iloc[-1] == pytest.approx(2.0, abs=0.3)
    assert tl["face"].mean() >= 0.5 and tl["speech"].mean() >= 0.5
    assert _probs_ok(tl, "fused").all()
    _probs_ok(tl, "face")
    _probs_ok(tl, "voice")
    assert set(tl["label"]) <= set(EMOTIONS)
    assert tl.attrs["models"]["face"] and tl.attrs["source"].endswith(".flv")
    # the evidence the fusion weighs, per modality, read over the classes its model has
    for m in ("face", "voice"):
        p = tl.probabilities(m)
        rows = ~np.isnan(p).any(axis=1)
        own = np.sort(p[rows][:, [EMOTIONS.index(c) for c in (analyzer.face_model.labels if m == "face"
                                                                else EMOTIONS)]], axis=1)
        np.testing.assert_allclose(tl[f"confidence_{m}"][rows], own[:, -1], atol=1e-4)
        np.testing.assert_allclose(tl[f"margin_{m}"][rows], own[:, -1] - own[:, -2], atol=1e-4)
        certainty = tl[f"certainty_{m}"][rows].to_numpy()
        assert ((certainty >= 0) & (certainty <= 1)).all()
        assert tl[f"confidence_{m}"][~rows].isna().all()


def test_streamed_audio_gives_the_same_voice_windows(analyzer, clips):
    whole = analyzer.analyze(clips["ravdess_wav"])
    streamed = Analyzer("default", audio_chunk=0.7).analyze(clips["ravdess_wav"])
    assert (whole["speech"] == streamed["speech"]).all()
    assert np.allclose(whole.probabilities("voice"), streamed.probabilities("voice"), atol=1e-5, equal_nan=True)


def test_the_whole_sound_track_is_read_even_past_the_files_stated_length(analyzer, clips):
    """The CREMA-D clip states 1.868 s but its sound runs to 1.907 s: the voice path reads it all (a stretch's end
    is applied only when one is asked for), so the windows' voice answers are the voice model's on the whole track."""
    from avemo.audio.windows import Window
    from avemo.media import probe, read_audio

    path = clips["cremad_hap"]
    wave = read_audio(path, analyzer.voice_model.sample_rate)
    assert wave.size / analyzer.voice_model.sample_rate > probe(path).duration + 0.03
    tl = analyzer.analyze(path)
    direct = analyzer.voice_model.predict_windows(wave, [Window(a, b) for a, b in zip(tl["start"], tl["end"])])
    assert np.allclose(tl.probabilities("voice"), direct, atol=1e-5)


def test_video_without_audio_gives_face_only_windows(analyzer, clips):
    tl = analyzer.analyze(clips["ravdess_mp4"])
    assert len(tl) >= 2 and tl["end"].iloc[-1] == pytest.approx(4.07, abs=0.1)
    assert tl["face"].all() and not tl["speech"].any()
    assert (tl["source"] == "face").all()
    assert np.isnan(tl.probabilities("voice")).all()
    # face only: the fused row is the face's own distribution, exactly (weight 1), never relabelled
    np.testing.assert_array_equal(tl.probabilities("fused"), tl.probabilities("face"))
    assert (tl["weight_face"] == 1.0).all() and (tl["weight_voice"] == 0.0).all()
    assert tl["confidence_face"].notna().all() and tl["confidence_voice"].isna().all()


def test_audio_only_file_gives_voice_only_windows(analyzer, clips):
    tl = analyzer.analyze(clips["ravdess_wav"])
    assert not tl["face"].any() and tl["speech"].any()
    assert set(tl["source"]) <= {"voice", "none"}


def test_image_gives_one_face_row(analyzer, data):
    image = next((data / "fer2013" / "test" / "happy").glob("PrivateTest_*.jpg"))
    tl = analyzer.analyze(image)
    assert len(tl) == 1 and tl["source"].iloc[0] in {"face", "none"}
    # a tight crop the detectors miss as it is (here): found on the framed photo, not read whole
    tl = analyzer.analyze(data / "fer2013" / "test" / "angry" / "PrivateTest_10131363.jpg")
    assert len(tl) == 1 and tl["source"].iloc[0] == "face" and not tl.attrs["face_whole_photo"]
    assert tl.attrs["media"] == {"kind": "image", "width": 48, "height": 48}
    # its figure is the photo with the face box beside the face's probabilities, not a timeline
    photo, bars = tl.plot().axes
    assert photo.images and photo.patches and len(bars.patches) == len(tl.labels)
    assert bars.get_title().startswith(tl["label"].iloc[0]) and not tl.attrs["face_whole_photo"]


def test_a_face_crop_no_detector_reads_is_read_whole_and_says_so(analyzer, data, tmp_path, capsys, monkeypatch):
    from avemo.faces import FaceScanner
    from avemo.media import read_image

    # a real face crop that MediaPipe and Haar miss even framed here; they are switched off so that the test does
    # not rest on how another machine's detectors read this one photo
    photo = data / "fer2013" / "test" / "angry" / "PrivateTest_10304478.jpg"
    monkeypatch.setattr(FaceScanner, "detect", lambda self, image, timestamp_ms=None: [])
    tl = analyzer.analyze(photo)
    tl_label = tl["label"].iloc[0]
    assert tl.attrs["face_whole_photo"] and tl["source"].iloc[0] == "face"
    assert tl["face_blendshapes"].iloc[0] == 0.0  # the crop network alone
    assert tl.boxes[["x0", "y0", "x1", "y1"]].iloc[0].tolist() == [0, 0, 48, 48]
    assert "whole photo" in tl.plot().axes[1].get_title()
    assert main(["analyze", str(photo), "--out", str(tmp_path / "out"), "--annotate"]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("PrivateTest_10304478"))
    parts = line.split()
    assert parts[1] == "photo" and parts[2] == parts[3] == tl_label and parts[4] == "-"  # no length, no sound
    assert (tmp_path / "out" / "PrivateTest_10304478" / "timeline.png").is_file()
    annotated = read_image(tmp_path / "out" / "PrivateTest_10304478" / "annotated.png")  # --annotate: the photo
    assert annotated.shape == (360, 360, 3)  # enlarged so that the box and the bars fit
    # pictures without a face stay faceless: a larger one, a flat one, a speck
    for name, picture in (("wide.png", np.full((480, 640, 3), 90, np.uint8)), ("flat.png", np.full((48, 48, 3), 90,
                          np.uint8)), ("speck.png", read_image(photo)[20:28, 20:28])):
        cv2.imwrite(str(tmp_path / name), picture)
        tl = analyzer.analyze(tmp_path / name)
        assert not tl.attrs["face_whole_photo"] and tl["source"].iloc[0] == "none", name


def test_a_group_photo_gives_a_row_per_face_with_all_faces(clips, tmp_path):
    from avemo.media import iter_frames

    rav = next(iter(iter_frames(clips["ravdess_mp4"], 5.0))).image
    cre = next(iter(iter_frames(clips["cremad_hap"], 5.0))).image
    left = cv2.resize(rav, (480, 480))  # the bigger face
    right = cv2.copyMakeBorder(cre, 60, 60, 0, 0, cv2.BORDER_CONSTANT)
    photo = tmp_path / "two.png"
    cv2.imwrite(str(photo), np.hstack([left, right])[:, :, ::-1])
    one = Analyzer("default").analyze(photo)
    assert len(one) == 1 and "track" not in one.columns  # the main face only, by default
    tl = Analyzer("default", all_faces=True).analyze(photo)
    assert tl["track"].tolist() == [0, 1] and tl["face"].all()
    boxes = tl.boxes
    assert boxes["track"].tolist() == [0, 1] and boxes["x0"].iloc[0] < 480 <= boxes["x0"].iloc[1]  # largest first
    np.testing.assert_allclose(tl.probabilities("face")[0], one.probabilities("face")[0], atol=1e-5)
    photo_ax, bars = tl.plot().axes
    assert len(photo_ax.patches) == 2 and len(bars.patches) == 2 * len(tl.labels)


def test_bad_input_is_a_clear_error(analyzer, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(MediaError, match="notes.mp4"):
        analyzer.analyze(bad)


def test_cli_folder_survives_a_corrupt_file_and_reruns_skip(clips, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(clips["cremad_hap"], src)
    (src / "corrupt.mp4").write_bytes(clips["ravdess_mp4"].read_bytes()[:5000])
    out = tmp_path / "out"
    assert main(["analyze", str(src), "--out", str(out), "--annotate"]) == 1  # one failure reported
    folder = out / "1001_DFA_HAP_XX"
    for name in ("timeline.csv", "timeline.json", "summary.json", "timeline.png", "annotated.mp4", "timeline.vtt"):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["dominant"] in EMOTIONS
    from avemo.media import probe

    info = probe(folder / "annotated.mp4")
    assert info.has_audio and info.has_video and info.duration == pytest.approx(2.0, abs=0.3)
    err = capsys.readouterr().err
    assert "corrupt.mp4" in err and "1 failed" in err
    # one row per input, printed and in results.csv: the summary's headline, or the failure and its reason
    rows = {Path(r["input"]).name: r for r in pd.read_csv(out / "results.csv").to_dict("records")}
    hap, bad = rows["1001_DFA_HAP_XX.flv"], rows["corrupt.mp4"]
    assert (hap["status"], hap["folder"], hap["dominant"]) == ("done", folder.name, summary["dominant"])
    assert hap["face_dominant"] == summary["face_dominant"] and hap["duration"] == pytest.approx(summary["duration"])
    assert bad["status"] == "failed" and "corrupt.mp4" in bad["error"] and pd.isna(bad["dominant"])
    table = next(line for line in err.splitlines() if line.startswith("1001_DFA_HAP_XX.flv"))
    assert summary["dominant"] in table and "failed" in next(line for line in err.splitlines()
                                                             if line.startswith("corrupt.mp4"))
    mtime = (folder / "timeline.csv").stat().st_mtime_ns
    assert main(["analyze", str(src), "--out", str(out), "--annotate"]) == 1
    assert (folder / "timeline.csv").stat().st_mtime_ns == mtime
    assert "1 already done" in capsys.readouterr().err
    again = pd.read_csv(out / "results.csv").set_index("status")
    assert again.loc["skipped", "dominant"] == summary["dominant"] and "failed" in again.index


def test_subtitles_give_each_window_its_stretch_and_what_each_modality_says(analyzer, clips, faces_360, tmp_path):
    """``timeline.vtt``: one cue per labelled window, back to back from the first window's start to the last one's
    end (each around its centre), with the fused label and the face's and the voice's own answers; with several
    faces one cue per face, marked; with ``--text`` the window's words."""
    import re

    def cues(vtt: str) -> list[tuple[float, float, str]]:
        assert vtt.startswith("WEBVTT\n")
        out = []
        for block in vtt.strip().split("\n\n")[1:]:
            number, times, *text = block.split("\n")
            a, b = (sum(float(x) * m for x, m in zip(t.split(":"), (3600, 60, 1))) for t in times.split(" --> "))
            out.append((a, b, "\n".join(text)))
        return out

    tl = analyzer.analyze(clips["ravdess_mp4"])
    got = cues(tl.to_vtt(tmp_path / "t.vtt"))
    assert (tmp_path / "t.vtt").read_text(encoding="utf-8") == tl.to_vtt()
    labelled = tl[tl["label"].notna()]
    assert len(got) == len(labelled) >= 2
    assert got[0][0] == pytest.approx(tl["start"].iloc[0]) and got[-1][1] == pytest.approx(tl["end"].iloc[-1], abs=1e-3)
    assert all(a[1] == pytest.approx(b[0], abs=1e-3) for a, b in zip(got, got[1:]))  # back to back
    for (_, _, text), (_, row) in zip(got, labelled.iterrows()):
        assert text.startswith(f"{row['label']} {row['confidence']:.2f}")
        face = EMOTIONS[int(np.nanargmax([row[f"face_{e}"] for e in EMOTIONS]))]
        assert f"face {face} " in text and "voice" not in text  # a video without sound

    rav, cre = faces_360
    frames = [np.concatenate([rav[i % len(rav)], cre[i % len(cre)]], axis=1) for i in range(30)]
    both = Analyzer("default", all_faces=True).analyze(_compose(tmp_path / "two.mp4", frames, 10))
    marks = [re.match(r"face (\d+): ", text) for _, _, text in cues(both.to_vtt())]
    assert all(marks) and {int(m.group(1)) for m in marks} == set(both.tracks)

    words = Analyzer("default", text=True, language="en").analyze(clips["ravdess_wav"])
    said = [text for _, _, text in cues(words.to_vtt()) if "\n" in text]
    assert said and all("door" in text.split("\n")[1].lower() for text in said)


def test_a_folder_plots_each_file_while_the_next_is_analysed_and_loses_no_plot(analyzer, clips, tmp_path):
    """``avemo analyze`` on many files: the helper draws a file's plot while the next file is analysed, and
    ``done.json`` is written once the plot is; files are reported in input order; a helper that dies mid-batch
    leaves the plots to this process (the same picture), none lost."""
    import matplotlib.image

    from avemo.inference.batch import analyze_to_folder
    from avemo.inference.plot_worker import PlotWorker

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    inputs = [clips["cremad_hap"], bad, clips["ravdess_wav"], clips["cremad_sad"]]
    seen: list[tuple[str, str]] = []
    with PlotWorker() as worker:
        def progress(path: Path, status: str, message: str) -> None:
            seen.append((path.name, status))
            if status == "done" and worker.alive:  # the helper dies after the first file's plot
                worker._proc.kill()
                worker._proc.wait()
        report = analyze_to_folder(inputs, tmp_path / "out", analyzer, on_progress=progress, plotter=worker)
    assert seen == [(p.name, "failed" if p == bad else "done") for p in inputs]
    assert [Path(r["input"]).name for r in report.rows] == [p.name for p in inputs] and len(report.done) == 3
    for p in (clips["cremad_hap"], clips["ravdess_wav"], clips["cremad_sad"]):
        folder = tmp_path / "out" / p.stem
        assert (folder / "done.json").is_file(), p.name
        tl = analyzer.analyze(p)
        tl.plot(tmp_path / "here.png")
        assert np.array_equal(matplotlib.image.imread(folder / "timeline.png"),
                              matplotlib.image.imread(tmp_path / "here.png")), p.name


def test_a_folder_run_draws_every_file_in_one_overview(analyzer, clips, tmp_path):
    """Two files or more: ``overview.png`` beside ``results.csv``, a strip per analysed file (a failed one left
    out) whose windows carry the colour of their fused label, paler where uncertain; one file: none."""
    from matplotlib.colors import to_rgb

    from avemo.inference.batch import analyze_to_folder
    from avemo.inference.overview import Overview
    from avemo.labels import emotion_color

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    inputs = [clips["cremad_hap"], bad, clips["cremad_sad"]]
    out = tmp_path / "out"
    report = analyze_to_folder(inputs, out, analyzer)
    assert (out / "overview.png").read_bytes()[:4] == b"\x89PNG" and len(report.done) == 2
    overview = Overview.from_folders([(p.name, out / p.stem) for p in (clips["cremad_hap"], clips["cremad_sad"])])
    assert [s.name for s in overview.strips] == ["1001_DFA_HAP_XX.flv", "1001_DFA_SAD_XX.flv"]
    fig = overview.plot()
    bars = [b for b in fig.axes[0].patches]
    expected = [(lab, unc) for s in overview.strips for lab, unc in zip(s.labels, s.uncertain) if lab is not None]
    assert len(bars) == len(expected) >= 2
    for bar, (label, uncertain) in zip(bars, expected):
        assert bar.get_facecolor()[:3] == pytest.approx(to_rgb(emotion_color(label)))
        assert bar.get_alpha() == (0.35 if uncertain else 0.95)
    single = tmp_path / "single"
    analyze_to_folder([clips["cremad_hap"]], single, analyzer)
    assert not (single / "overview.png").exists()
    # report.html: the overview, a row per input (the failure with its reason), each file's figure; every link
    # and picture is a file of the folder
    from html.parser import HTMLParser
    from urllib.parse import unquote

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.refs: list[str] = []
            self.ids: set[str] = set()

        def handle_starttag(self, tag: str, attrs: list) -> None:
            a = dict(attrs)
            self.ids.add(a.get("id") or "")
            self.refs += [a[k] for k in ("href", "src") if k in a]

    page = (out / "report.html").read_text()
    links = Links()
    links.feed(page)
    assert "overview.png" in links.refs and "failed: " + str(bad) in page and "2 analysed, 1 failed" in page
    for ref in links.refs:
        assert ref[1:] in links.ids if ref.startswith("#") else (out / unquote(ref)).is_file(), ref
    assert sum(r.endswith("/timeline.png") for r in links.refs) == 2
    assert "overview.png" not in (single / "report.html").read_text()


def test_alternate_views_mirror_every_other_frame_and_keep_the_windows(analyzer, clips, data):
    """The default face views: one per frame, the mirror on every other sampled frame. A mirrored view is the
    network on the mirrored crop; both views averaged are the flip setting; on a real clip a window pools both
    views at half the network's cost and stays within 0.02 of the two-view probabilities; a photo keeps both."""
    from avemo.datasets import load_fer_image, read_corpus
    from avemo.inference.predictors import FacePredictor

    private = [s for s in read_corpus("fer2013", data / "fer2013") if s.split == "private_test"][::300][:12]
    crops = np.stack([load_fer_image(s) for s in private])
    model = FacePredictor(int8=False, tta="flip")
    plain, mirrored = (model.logits(crops, mirror=np.full(len(crops), m)) for m in (False, True))
    np.testing.assert_allclose(mirrored, FacePredictor(int8=False, tta="none").logits(crops[:, :, ::-1]), atol=1e-4)
    np.testing.assert_allclose((plain + mirrored) / 2, model.logits(crops), atol=1e-4)
    assert analyzer.config.face_tta == "alternate" and analyzer.face_model.tta == "flip"  # photos: both views
    both = Analyzer("default", face_tta="flip").analyze(clips["ravdess_mp4"])
    alternate = analyzer.analyze(clips["ravdess_mp4"])
    assert np.abs(alternate.probabilities("face") - both.probabilities("face")).mean() < 0.02


def test_shipped_int8_face_network_agrees_with_the_float_one(data):
    from avemo.datasets import load_fer_image, read_corpus
    from avemo.inference.predictors import FacePredictor

    private = [s for s in read_corpus("fer2013", data / "fer2013") if s.split == "private_test"][::18][:200]
    crops = np.stack([load_fer_image(s) for s in private])
    truth = np.array([EMOTIONS.index(s.label) for s in private])
    quantized, exact = FacePredictor(int8=True, tta="flip"), FacePredictor(int8=False, tta="flip")
    assert quantized.int8 and not exact.int8
    q, f = quantized.predict(crops), exact.predict(crops)
    assert (q.argmax(1) == f.argmax(1)).mean() >= 0.9
    assert (q.argmax(1) == truth).mean() >= (f.argmax(1) == truth).mean() - 0.03


def test_speed_benchmark_runs_and_renders(data, tmp_path):
    from avemo.bench.speed import render, run_all

    result = run_all(4.0, {"default": {}, "exact": {"landmark_every": 1}, "voice path": {"audio_only": True}},
                     repeat=1)
    voice = result["rows"].pop("voice path")
    for row in result["rows"].values():
        assert row["video"]["width"] == 1280 and row["video"]["height"] == 720
        assert row["windows"] >= 2 and row["face_windows"] == row["windows"] and row["speech_windows"] >= 1
        assert row["wall_s"] > 0 and row["cpu_s"] > 0 and row["peak_rss_mb"] > 100
        assert set(row["stages_s"]) >= {"decode", "faces", "face model", "audio decode", "vad", "voice model",
                                        "fusion"}
    # the voice path alone: the same sound track (the same windows, the same speech) and no face stage at all
    assert voice["video"]["width"] is None and abs(voice["video"]["seconds"] - 4.0) < 0.1
    assert voice["windows"] == row["windows"] and voice["face_windows"] == 0
    assert voice["speech_windows"] == row["speech_windows"]
    assert {"audio decode", "vad", "voice model"} <= set(voice["stages_s"]) and not {"decode", "faces"} & set(
        voice["stages_s"])
    result["rows"]["voice path"] = voice
    text = render(result)
    assert "| default |" in text and "| exact |" in text and "| voice path |" in text and "× real time" in text


# ---------------------------------------------------------------- real situations, built from the real clips
def _compose(path, frames: list[np.ndarray], fps: int, audio: np.ndarray | None = None, sr: int = 16000,
             rotation: int | None = None):
    """An H.264 (+ AAC) mp4 of ``frames`` (RGB) and mono ``audio``, interleaved by time."""
    import av

    packets = []
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt, vs.codec_context.options = "yuv420p", {"preset": "ultrafast"}
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if audio is not None:
            aus = out.add_stream("aac", rate=sr, layout="mono")
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts = i
            packets += vs.encode(f)
        packets += vs.encode(None)
        if audio is not None:
            for s in range(0, len(audio), 1024):
                f = av.AudioFrame.from_ndarray(audio[None, s:s + 1024].astype(np.float32), format="flt", layout="mono")
                f.sample_rate, f.pts = sr, s
                packets += aus.encode(f)
            packets += aus.encode(None)
        packets.sort(key=lambda p: float((p.dts or 0) * p.time_base))
        for p in packets:
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def faces_360(clips):
    """The RAVDESS and CREMA-D faces at 10 fps: 360x360 and 360x480 RGB frames."""
    import cv2

    from avemo.media import iter_frames

    rav = [cv2.resize(f.image, (360, 360)) for f in iter_frames(clips["ravdess_mp4"], 10.0)]
    cre = [cv2.resize(f.image, (480, 360)) for f in iter_frames(clips["cremad_hap"], 10.0)]
    return rav, cre


def test_a_stretch_without_face_and_one_without_speech(analyzer, clips, faces_360, tmp_path):
    from avemo.media import read_audio

    rav, _ = faces_360
    blank = np.full_like(rav[0], 90)
    # 12 s at 10 fps: the face in [0, 4) and [8, 12), an empty room in [4, 8);
    # speech in [0, 8) (the actor's sentence twice), silence in [8, 12)
    frames = [rav[i % len(rav)] if (i < 40 or i >= 80) else blank for i in range(120)]
    speech = read_audio(clips["ravdess_wav"], 16000)[:64000]
    speech = np.pad(speech, (0, 64000 - len(speech)))
    audio = np.concatenate([speech, speech, np.zeros(64000, np.float32)])
    tl = analyzer.analyze(_compose(tmp_path / "stretches.mp4", frames, 10, audio))
    at = {round(s): r for s, r in zip(tl["start"], tl.itertuples())}
    assert at[0].source == "av"
    assert not at[4].face and at[4].speech and at[4].source == "voice"  # window [4, 7): no face, speech
    assert at[9].face and not at[9].speech and at[9].source == "face"  # window [9, 12): face, silence
    assert np.isnan(tl.probabilities("face")[~tl["face"].to_numpy()]).all()
    assert _probs_ok(tl, "fused")[tl["source"].to_numpy() != "none"].all()
    # inside one audio-visual file, a window with one modality is that modality exactly under the default fusion
    fused, face, voice = (tl.probabilities(m) for m in ("fused", "face", "voice"))
    for i, row in enumerate(tl.itertuples()):
        if row.source == "face":
            assert np.array_equal(fused[i], face[i]) and (row.weight_face, row.weight_voice) == (1.0, 0.0)
        elif row.source == "voice":
            assert np.array_equal(fused[i], voice[i]) and (row.weight_face, row.weight_voice) == (0.0, 1.0)


def test_a_face_without_landmarks_rests_on_the_crop_network_and_says_so(analyzer, clips, monkeypatch):
    """MediaPipe finds nothing (patched out), OpenCV's Haar cascade finds the face: the windows still have a
    face answer, from the crop network alone, and ``face_blendshapes`` says no frame had the second member."""
    from avemo.faces.landmarker import FaceLandmarker

    normal = analyzer.analyze(clips["cremad_ang"])
    assert (normal["face_blendshapes"] > 0).all()
    monkeypatch.setattr(FaceLandmarker, "detect", lambda self, *a, **k: [])
    tl = analyzer.analyze(clips["cremad_ang"])
    assert tl["face"].all() and (tl["face_blendshapes"] == 0).all()
    assert _probs_ok(tl, "face").all()
    assert not np.allclose(tl.probabilities("face"), normal.probabilities("face"))  # the member is really gone


def test_two_faces_main_face_by_default_and_one_timeline_each_with_all_faces(faces_360, tmp_path):
    rav, cre = faces_360
    # the RAVDESS actor on the left (360 wide), the CREMA-D one on the right (480 wide): 3 s, no sound
    frames = [np.concatenate([rav[i % len(rav)], cre[i % len(cre)]], axis=1) for i in range(30)]
    path = _compose(tmp_path / "two.mp4", frames, 10)
    main_only = Analyzer("default").analyze(path)
    assert isinstance(main_only, EmotionTimeline) and main_only["face"].all()
    both = Analyzer("default", all_faces=True).analyze(path)
    assert isinstance(both, EmotionTimeline) and len(both.tracks) == 2  # one timeline, a track column
    boxes = both.boxes
    centres = sorted(boxes[boxes["track"] == t][["x0", "x1"]].to_numpy().mean() for t in both.tracks)
    scale = 640 / 840  # decoded with the longer side at 640
    assert centres[0] < 360 * scale < centres[1]  # one track per person, each on its own side
    for t in both.tracks:
        assert both[both["track"] == t]["face"].mean() >= 0.6
    assert set(both.summary()["tracks"]) == {str(t) for t in both.tracks}


def test_every_face_is_drawn_in_its_own_emotion_with_all_faces(faces_360, tmp_path):
    """``--annotate`` with ``--all-faces``: each followed face has its box drawn in the colour of its own window's
    fused emotion (not only the face seen longest)."""
    from avemo.inference.annotate import annotate_video
    from avemo.labels import emotion_rgb
    from avemo.media import iter_frames

    rav, cre = faces_360
    frames = [np.concatenate([rav[i % len(rav)], cre[i % len(cre)]], axis=1) for i in range(30)]
    path = _compose(tmp_path / "two.mp4", frames, 10)
    both = Analyzer("default", all_faces=True).analyze(path)
    assert len(both.tracks) == 2
    out = annotate_video(path, both, tmp_path / "annotated.mp4")
    frame = next(f for f in iter_frames(out, None) if f.time >= 1.45)
    boxes = both.boxes
    for track in both.tracks:
        mine = boxes[boxes["track"] == track]
        row = mine.iloc[int((mine["time"] - frame.time).abs().argmin())]
        windows = both[both["track"] == track]
        label = windows["label"].iloc[int(((windows["start"] + windows["end"]) / 2 - frame.time).abs().argmin())]
        x0, x1, y1 = int(row["x0"]), int(row["x1"]), int(row["y1"])
        edge = frame.image[y1 - 1:y1 + 2, x0 + 4:x1 - 4].reshape(-1, 3).astype(float)  # the box's lower side
        near = np.abs(edge - np.array(emotion_rgb(label))).max(axis=1) < 60
        assert near.mean() > 0.5, (track, label, edge.mean(axis=0))


def test_portrait_phone_video_is_analysed_upright(faces_360, tmp_path):
    rav, _ = faces_360
    # a phone held upright records landscape pixels plus a rotation flag: store the portrait frames
    # turned 90 degrees, flagged so that players (and avemo) turn them back
    portrait = [np.pad(f, ((140, 140), (0, 0), (0, 0)), constant_values=60) for f in rav[:30]]  # 640x360
    stored = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in portrait]  # 360x640 landscape pixels
    tl = Analyzer("default").analyze(_compose(tmp_path / "phone.mp4", stored, 10, rotation=90))
    assert tl.attrs["media"]["rotation"] in (90, 270) and tl["face"].all()
    boxes = tl.boxes
    assert (boxes["x1"] <= 360 + 1).all() and (boxes["y0"] >= 140 - 20).all()  # inside the upright frame


@pytest.mark.parametrize("name", ["ravdess_mp4", "ravdess_wav"])
def test_progress_is_reported_through_the_media(analyzer, clips, name):
    seen: list[tuple[float, float]] = []
    tl = analyzer.analyze(clips[name], progress=lambda done, total: seen.append((done, total)))
    duration = tl.attrs["media"]["duration"]
    assert len(seen) >= 2 and all(total == duration for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == duration


def test_the_avemo_script_exits_with_its_status_and_everything_written(clips, tmp_path):
    """``python -m avemo`` (as the ``avemo`` script) ends without the interpreter's teardown: its exit status is
    avemo's, the printed lines reach a pipe, and every output file is complete (one good file and one bad)."""
    import subprocess
    import sys

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    done = subprocess.run([sys.executable, "-m", "avemo", "analyze", str(clips["cremad_hap"]), str(bad), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]  # one file failed
    assert "1 analysed, 0 already done, 1 failed" in done.stderr + done.stdout
    folder = tmp_path / "out" / "1001_DFA_HAP_XX"
    assert json.loads((folder / "timeline.json").read_text())["windows"]
    assert (folder / "timeline.png").read_bytes()[:4] == b"\x89PNG" and (folder / "done.json").is_file()
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(rows["status"]) == ["done", "failed"]


def test_ctrl_c_on_a_folder_keeps_every_finished_file_and_a_rerun_goes_on(clips, tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group: the command and its plot helper) during a batch: the
    command says so and exits 130 without a traceback; every file reported done has its plot and ``done.json``,
    ``results.csv`` lists them; the same command run again skips them and does the rest."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        shutil.copy(clips["cremad_hap"], src / f"clip{i:02d}.flv")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "avemo", "analyze", str(src), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # SIGABRT: every thread's stack
    deadline = time.monotonic() + 240
    while not (out / "clip00" / "done.json").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # say where it hangs: faulthandler prints every thread's stack on SIGABRT
        os.kill(proc.pid, signal.SIGABRT)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        pytest.fail(f"the interrupted command did not end within 120 s; its output ends:\n{stderr[-6000:]}")
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr + stdout and "run the same command again" in stderr, stderr[-2000:]
    rows = pd.read_csv(out / "results.csv")
    assert 1 <= len(rows) < 12 and set(rows["status"]) == {"done"}
    for name in rows["folder"]:
        assert (out / name / "done.json").is_file() and (out / name / "timeline.png").stat().st_size > 0, name
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{12 - len(rows)} analysed, {len(rows)} already done, 0 failed" in again.stderr


def test_a_url_is_downloaded_once_and_analysed_and_a_bad_one_fails_alone(clips, tmp_path, capsys, http_site):
    """``avemo analyze https://...``: the file is fetched from a real HTTP server (started here) into
    OUT/downloads, analysed like a local file and listed by its URL; a missing one (404), a refused connection and
    a stream URL each fail alone with the reason; a rerun neither downloads nor analyses again."""
    import shutil

    base, site, served = http_site
    shutil.copy(clips["cremad_hap"], site / "talk.flv")
    out = tmp_path / "out"
    good, missing = f"{base}/talk.flv", f"{base}/missing.mp4"
    args = ["analyze", good, missing, "http://127.0.0.1:1/x.mp4", "rtsp://camera/live", "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 analysed, 0 already done, 3 failed" in err and "HTTP 404" in err
    rows = pd.read_csv(out / "results.csv").set_index("input")
    assert rows.loc[good, "status"] == "done" and rows.loc[good, "dominant"] in EMOTIONS
    assert "HTTP 404" in rows.loc[missing, "error"] and "refused" in rows.loc["http://127.0.0.1:1/x.mp4", "error"]
    assert "avemo live --source rtsp://camera/live" in rows.loc["rtsp://camera/live", "error"]
    (download,) = (out / "downloads").glob("talk-*.flv")
    assert download.read_bytes() == clips["cremad_hap"].read_bytes()
    assert (out / download.stem / "done.json").is_file()
    n = served.count("/talk.flv")
    assert main(["analyze", good, "--out", str(out)]) == 0
    assert "0 analysed, 1 already done, 0 failed" in capsys.readouterr().err and served.count("/talk.flv") == n
    # the Python API and avemo inspect take the URL too (downloaded into $AVEMO_CACHE/downloads)
    import avemo
    from avemo.config import cache_root
    from avemo.media.fetch import local_name

    kept = cache_root() / "downloads" / local_name(good)
    try:
        here = avemo.analyze(good)
        assert kept.read_bytes() == download.read_bytes()
        assert main(["inspect", good]) == 0 and "faces: found in" in capsys.readouterr().out
    finally:  # the port, so the name, is new on every run: leave nothing in the cache
        kept.unlink(missing_ok=True)
        kept.with_name(kept.name + ".url").unlink(missing_ok=True)
    assert list(here["label"]) == list(pd.read_csv(out / download.stem / "timeline.csv")["label"])
    with pytest.raises(avemo.errors.MediaError, match="HTTP 404"):
        avemo.analyze(missing)


def test_a_stretch_of_a_file_is_analysed_in_the_files_own_times(analyzer, clips, tmp_path, capsys):
    """``start`` / ``end`` (``--start 0:01 --end 3.5``): windows, face frames and words keep the file's times; the
    sound read is exactly that stretch of the track; a window's face answer matches the whole file's window at the
    same place (the same frames, seen from a fresh tracker); a stretch past the end or a bad range is refused."""
    from avemo.media import iter_audio, read_audio

    exact = {"landmark_every": 1, "face_tta": "flip"}
    whole = analyzer.with_settings(**exact).analyze(clips["ravdess_mp4"])
    part = analyzer.with_settings(start=1.0, **exact).analyze(clips["ravdess_mp4"])
    assert part["start"].iloc[0] == 1.0 and part["end"].iloc[-1] == pytest.approx(whole["end"].iloc[-1])
    assert (part.boxes["time"] >= 0.99).all() and part.summary()["duration"] == pytest.approx(
        whole["end"].iloc[-1] - 1.0)
    same = whole.set_index("start").loc[part["start"]]
    diff = np.abs(part.probabilities("face") - EmotionTimeline(same.reset_index()).probabilities("face"))
    assert np.nanmean(diff) < 0.01, diff  # 0.002 here

    full = read_audio(clips["ravdess_wav"], 16000)
    cut = np.concatenate(list(iter_audio(clips["ravdess_wav"], 16000, chunk_seconds=0.7, start=0.5, end=2.25)))
    assert np.array_equal(cut, full[8000:36000])
    voice = analyzer.with_settings(start=0.5, end=3.5).analyze(clips["ravdess_wav"])
    assert list(zip(voice["start"], voice["end"])) == [(0.5, 3.5)] and voice["speech"].all()

    out = tmp_path / "out"
    assert main(["analyze", str(clips["ravdess_mp4"]), "--start", "0:01", "--end", "3.5", "--out", str(out)]) == 0
    rows = pd.read_csv(out / clips["ravdess_mp4"].stem / "timeline.csv")
    assert rows["start"].iloc[0] == 1.0 and rows["end"].iloc[-1] == 3.5
    with pytest.raises(MediaError, match="lies beyond"):
        analyzer.with_settings(start=60.0).analyze(clips["ravdess_mp4"])
    with pytest.raises(AvemoError, match="start < end"):
        analyzer.with_settings(start=2.0, end=1.0)
    with pytest.raises(SystemExit):
        main(["analyze", str(clips["ravdess_mp4"]), "--start", "1:75", "--out", str(out)])
    assert "is not a time" in capsys.readouterr().err


def test_cli_exact_faces_runs_mediapipe_on_every_frame(clips, tmp_path):
    assert main(["analyze", str(clips["cremad_sad"]), "--out", str(tmp_path), "--exact-faces"]) == 0
    meta = json.loads((tmp_path / "1001_DFA_SAD_XX" / "done.json").read_text())
    assert meta["config"]["landmark_every"] == 1 and meta["config"]["skip_loop_filter"] is False
    assert meta["config"]["face_tta"] == "flip"  # both views on every frame
    default = Analyzer("default").config
    assert default.landmark_every == 2 and default.skip_loop_filter  # faces carried by flow, deblocking skipped


def test_bad_settings_fail_once_with_a_clear_error(clips, tmp_path, capsys):
    from avemo.errors import AvemoError

    with pytest.raises(AvemoError, match="window must be a positive number"):
        Analyzer("default", window=0)
    assert main(["analyze", str(clips["cremad_hap"]), "--window", "-1", "--out", str(tmp_path / "o")]) == 2
    assert "window must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before any file was touched


def test_speed_benchmark_over_encodings_runs_floor_api_and_cli(data):
    from avemo.bench.speed import render_encodings, run_encodings
    from avemo.media import probe

    result = run_encodings(2.0, repeat=1, names=["vp9-opus-720p", "phone-portrait-1080p"])
    for row in result["rows"].values():
        assert row["floor_s"] > 0 and row["api_s"] > 0 and row["cli_s"] > row["api_s"] * 0.5
        assert row["api_over_floor"] > 0 and row["cli_realtime"] > 0
    assert result["rows"]["phone-portrait-1080p"]["video"]["width"] == 1080  # shown upright: portrait
    text = "\n".join(render_encodings(result))
    assert "| `vp9-opus-720p` | 1280x720 |" in text and "| `phone-portrait-1080p` | 1080x1920 |" in text
    from avemo.bench.encodings import build_video

    info = probe(build_video("vp9-opus-720p", 2.0))
    assert (info.video_codec, info.audio_codec) == ("vp9", "opus") and abs(info.duration - 2.0) < 0.2


def test_the_speed_benchmark_counts_a_failed_cli_run_instead_of_taking_its_time(tmp_path):
    """A CLI run whose file failed is a failure, not a time: the benchmark reads avemo's own exit status, and a
    run_encodings row keeps failures apart (left out of the medians, named under the table)."""
    from avemo.bench.encodings import cli_end_to_end
    from avemo.bench.speed import render_encodings
    from avemo.errors import AvemoError

    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(AvemoError, match="exit status 1") as err:
        cli_end_to_end(bad)
    assert "cannot be opened as media" in str(err.value)
    row = {"encoding": "x", "video": {"width": 1280, "height": 720}, "floor_s": 1.0, "api_s": 4.0,
           "api_over_floor": 4.0, "cli_s": 6.0, "cli_runs_s": [6.0, None], "cli_realtime": 10.0, "api_cpu_s": 8.0,
           "cli_cpu_s": 9.0, "stages_s": {}, "peak_rss_mb": 500.0, "cli_failures": [str(err.value)]}
    text = "\n".join(render_encodings({"rows": {"h264": row}, "repeat": 2, "commit": "c", "load_average": (1.0,)}))
    assert "[6.00, failed]" in text
    assert "CLI runs that failed (1; left out of the medians): `h264`: avemo analyze" in text


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="Linux /proc")
def test_a_benchmark_child_reports_its_own_peak_memory_not_its_parents():
    """``ru_maxrss`` keeps the parent's peak across exec: the benchmark children's peak RSS comes from VmHWM."""
    import subprocess
    import sys

    ballast = np.ones(400 * 2**20, np.uint8)  # this process: at least 400 MB resident
    code = "from avemo.provenance import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 5 < child < 200 and ballast.sum() == ballast.size


def test_text_from_speech_per_window(clips):
    """``text=True``: the speech transcribed offline, each window's words and their emotions beside the face and
    voice columns, a text row and a weights row in the plot. "Kids are talking by the door" holds no emotion word,
    so the default fusion's gate leaves the text out: weight 0, the fused answer is the voice's."""
    tl = Analyzer("default", text=True).analyze(clips["ravdess_wav"])
    words = " ".join(tl["transcript"]).lower()
    assert "door" in words and ("kids" in words or "dogs" in words)
    assert set(tl["text_language"].dropna()) == {"en"} and (tl["text_words"] > 0).all()
    np.testing.assert_allclose(tl.probabilities("text").sum(1), 1.0, atol=1e-4)
    assert tl.modalities == ("face", "voice", "fused", "text") and tl.attrs["transcript"]["language"] == "en"
    w = tl[["weight_face", "weight_voice", "weight_text"]].to_numpy(np.float64)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-4)
    assert (w[:, 0] == 0).all() and (w[:, 1] == 1).all() and (w[:, 2] == 0).all()  # no face in a .wav; text gated
    assert (tl["text_emotion_words"] == 0).all() and tl.summary()["text_emotion_share"] == 0.0
    np.testing.assert_allclose(tl.probabilities("fused"), tl.probabilities("voice"), atol=1e-6)
    axes = tl.plot().axes
    assert len(axes) == 5 and "no\nemotion word" in axes[3].get_ylabel()  # the text row says what is left out
    assert tl["confidence_text"].notna().all() and tl["confidence_face"].isna().all()


def test_a_given_language_is_the_transcripts_and_only_served_languages_get_text(clips, tmp_path):
    """``language`` skips Whisper's detection: the English sentence decoded as German is German in every window,
    so ``text.carer`` (English only) gives those windows no text probabilities; an unknown code is refused with
    the code named, by the analyzer and by the command line before any file."""
    tl = Analyzer("default", text=True, language="de").analyze(clips["ravdess_wav"])
    assert tl.attrs["transcript"]["language"] == "de" and set(tl["text_language"].dropna()) == {"de"}
    assert (tl["text_words"] > 0).any() and np.isnan(tl.probabilities("text")).all()
    assert (tl["weight_text"] == 0).all()
    with pytest.raises(AvemoError, match="'xx'"):
        Analyzer("default", text=True, language="xx").analyze(clips["ravdess_wav"])
    assert main(["analyze", str(clips["ravdess_wav"]), "--out", str(tmp_path), "--text", "--language", "xx"]) == 2
    assert not any(tmp_path.iterdir())


def test_a_window_with_words_and_no_voice_is_text_only(clips):
    """With ``min_speech`` 1 no window of the sentence counts as voice (VAD never calls a whole 3 s window of it
    speech), so the windows with words rest on the text alone: the fused row is the text's, weight 1."""
    tl = Analyzer("default", text=True, min_speech=1.0).analyze(clips["ravdess_wav"])
    assert not tl["speech"].any() and (tl["text_words"] > 0).any()
    only = (tl["text_words"] > 0).to_numpy()
    assert (tl["source"][only] == "text").all() and (tl["source"][~only] == "none").all()
    np.testing.assert_array_equal(tl.probabilities("fused")[only], tl.probabilities("text")[only])
    assert (tl["weight_text"][only] == 1.0).all() and (tl["weight_voice"] == 0.0).all()
    assert set(tl["label"][only]) <= {"happy", "sad", "angry", "fearful", "surprised"}  # text.carer's classes

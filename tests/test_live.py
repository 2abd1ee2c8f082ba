"""The live analyzer: shared real clips played as live sources (real time and faster), the CLI, and
clear errors for absent sources and devices. Mechanics, not accuracy (the shipped default bundles)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from avemo import cli
from avemo.errors import AvemoError, MediaError
from avemo.inference.events import LiveEvent, latency_stats
from avemo.inference.live import LiveAnalyzer
from avemo.labels import EMOTIONS
from avemo.media.live import LiveSource, open_device, parse_source


@pytest.fixture(scope="module")
def models() -> dict[str, str]:
    """The shipped default bundles (the live mechanics are under test, not accuracy)."""
    from avemo.inference.predictors import DEFAULT_MODELS

    return dict(DEFAULT_MODELS)


@pytest.fixture(scope="module")
def analyzer(models: dict[str, str]) -> LiveAnalyzer:
    return LiveAnalyzer(models, fps=5, hop=1.0, smooth=1.0)


def _check_probs(probs: dict[str, float] | None) -> None:
    assert probs is not None
    assert list(probs) == list(EMOTIONS)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(0.0 <= p <= 1.0 for p in probs.values())


def _check_events(events: list[LiveEvent]) -> None:
    assert events
    times = [e.time for e in events]
    assert all(b > a for a, b in zip(times, times[1:])), times
    for e in events:
        assert e.latency_ms > 0
        if e.label is None:
            assert e.source == "none" and e.smoothed is None
            continue
        assert e.label in EMOTIONS
        for probs in (e.fused, e.smoothed) + ((e.face,) if e.source in ("av", "face") else ()):
            _check_probs(probs)
        assert e.label == max(e.smoothed, key=e.smoothed.get)


def test_audio_visual_clip_in_real_time(analyzer: LiveAnalyzer, clips: dict[str, Path]) -> None:
    events: list[LiveEvent] = []
    s = analyzer.run(clips["cremad_hap"], events.append)
    _check_events(events)
    assert s.events == len(events) and s.speed == 1.0
    # paced like a camera: about as long on the wall clock as the clip itself
    assert s.wall_seconds >= 0.9 * s.media_seconds and s.media_seconds > 1.5
    assert s.frames >= 50  # every decoded frame is delivered (29.97 fps, 1.87 s)
    assert s.processed + s.dropped >= 9  # one sampling instant per 0.2 s
    assert sum(e.source in ("av", "face") for e in events) >= 0.8 * len(events)  # a real face
    voiced = [e for e in events if e.voice is not None]  # real speech, found by VAD
    assert voiced and all(e.source == "av" for e in voiced)
    for e in voiced:
        _check_probs(e.voice)
    assert s.voice_steps >= 2
    lat = np.array([e.latency_ms for e in events])
    assert s.latency_ms["max"] == pytest.approx(lat.max(), abs=0.01)
    assert s.latency_ms["median"] == pytest.approx(np.median(lat), abs=0.01)
    assert 0 < s.latency_ms["median"] <= s.latency_ms["p95"] <= s.latency_ms["max"]
    print("\ncremad_hap real time:", s.format())


def test_face_only_clip_has_no_voice(analyzer: LiveAnalyzer, clips: dict[str, Path]) -> None:
    events: list[LiveEvent] = []
    s = analyzer.run(clips["ravdess_mp4"], events.append, speed=4.0)
    _check_events(events)
    assert all(e.voice is None and e.source in ("face", "none") for e in events)
    assert s.voice_steps == 0
    assert s.labelled >= 0.8 * s.events  # MediaPipe finds the actor's face
    assert s.media_seconds > 3.9
    assert s.wall_seconds >= s.media_seconds / 4.0 * 0.9  # 4x, not as fast as possible
    assert 15 <= s.processed + s.dropped <= 22  # 4.07 s sampled at 5 fps
    assert abs(sum(s.label_share.values()) - 1.0) < 1e-3


def test_voice_only_file_gives_an_event_per_hop(analyzer: LiveAnalyzer, clips: dict[str, Path]) -> None:
    events: list[LiveEvent] = []
    s = analyzer.run(clips["ravdess_wav"], events.append, speed=4.0)
    _check_events(events)
    assert s.frames == 0 and s.processed == 0
    times = [e.time for e in events]
    # a voice step at the first audio past each hop: the first at 1 s, then at least a hop apart (a step that
    # takes longer than the hop, on a slow machine, delays the next one rather than queueing it)
    assert times[0] == pytest.approx(1.0, abs=0.06)
    assert all(b - a >= 1.0 - 0.06 for a, b in zip(times, times[1:])) and len(times) >= 3
    assert all(e.face is None for e in events)
    assert any(e.source == "voice" for e in events)


def test_busy_consumer_drops_frames_and_latency_stays_bounded(analyzer: LiveAnalyzer,
                                                              clips: dict[str, Path]) -> None:
    events: list[LiveEvent] = []

    def slow(event: LiveEvent) -> None:  # a consumer slower than the frame rate
        events.append(event)
        time.sleep(0.35)

    s = analyzer.run(clips["ravdess_mp4"], slow, speed=2.0)
    assert s.dropped >= 5
    assert 15 <= s.processed + s.dropped <= 22
    # frames are replaced, not queued: a label comes from the freshest frame, so latency does not pile up
    # behind the slow callback (queued, the k-th frame would wait k x 0.35 s, and the later half of the events
    # would wait seconds longer than the first half); this holds however fast the machine is
    lat = [e.latency_ms for e in events]
    half = len(lat) // 2
    assert np.median(lat[half:]) < np.median(lat[:half]) + 350, lat
    _check_events(events)


def test_duration_stops_early_and_smoothing_off(analyzer: LiveAnalyzer, clips: dict[str, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analyzer, "smooth", 0.0)
    events: list[LiveEvent] = []
    # real-time pacing: a slow machine still looks before the end
    s = analyzer.run(clips["cremad_sad"], events.append, duration=1.0, speed=1.0)
    assert 1.0 <= s.media_seconds < 1.8  # stopped at the first look after 1 s of media, not at the end (2.0 s)
    labelled = [e for e in events if e.fused is not None]
    assert labelled
    for e in labelled:  # no smoothing: the label is the fused argmax
        assert e.smoothed == e.fused
        # what the fused answer rests on, and whether it is sure
        assert sum(e.weights.values()) == pytest.approx(1.0, abs=1e-3) and e.uncertain == (e.confidence < 0.5)


def test_smoothing_averages_over_time(analyzer: LiveAnalyzer, clips: dict[str, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analyzer, "smooth", 1.0)
    events: list[LiveEvent] = []
    analyzer.run(clips["cremad_ang"], events.append, speed=4.0)
    seq = [e for e in events if e.fused is not None]
    for prev, cur in zip(seq, seq[1:]):
        alpha = 1.0 - np.exp(-(cur.time - prev.time) / 1.0)
        want = {k: prev.smoothed[k] + alpha * (cur.fused[k] - prev.smoothed[k]) for k in EMOTIONS}
        assert cur.smoothed == pytest.approx(want, abs=1e-4)


def test_stream_url_source(analyzer: LiveAnalyzer, clips: dict[str, Path]) -> None:
    events: list[LiveEvent] = []
    s = analyzer.run(f"file:{clips['cremad_hap']}", events.append, speed=4.0)
    _check_events(events)
    assert s.frames >= 50 and s.media_seconds > 1.5
    assert any(e.source == "av" for e in events)


def test_unpaced_source_like_a_camera(analyzer: LiveAnalyzer, clips: dict[str, Path]) -> None:
    """A blocking frame iterator (as a webcam or OpenCV capture would be): items count as captured
    when they arrive, nothing is held back."""
    from avemo.media import iter_frames

    def camera():
        for f in iter_frames(clips["ravdess_mp4"], None, max_side=720, end=2.0):
            time.sleep(1 / 60)  # a 60 fps camera showing the clip at half speed
            yield "video", f.time, f.image

    events: list[LiveEvent] = []
    s = analyzer.run(LiveSource("camera", [camera()], has_video=True, has_audio=False), events.append)
    _check_events(events)
    assert s.frames == 60 and s.wall_seconds >= 0.9 and s.media_seconds > 1.9
    assert 9 <= s.processed + s.dropped <= 11


def test_voice_carries_on_when_the_video_stops(analyzer: LiveAnalyzer, clips: dict[str, Path]) -> None:
    """Two paced readers (video for 0.5 s, audio for the whole clip): once frames stop coming, each
    voice step gives its own event."""
    from avemo.media import iter_audio, iter_frames

    clip = clips["cremad_ang"]
    video = (("video", f.time, f.image) for f in iter_frames(clip, None, max_side=720, end=0.5))
    audio, n = [], 0
    for chunk in iter_audio(clip, 16000, chunk_seconds=0.05):
        n += chunk.size
        audio.append(("audio", n / 16000, chunk))
    source = LiveSource("split", [video, iter(audio)], has_video=True, has_audio=True, paced=True)
    events: list[LiveEvent] = []
    analyzer.run(source, events.append, speed=2.0)
    _check_events(events)
    assert {e.source for e in events if e.time < 0.5} <= {"face", "none"}
    late = [e for e in events if e.time > 1.5]
    assert late and all(e.face is None and e.source in ("voice", "none") for e in late)
    assert any(e.source == "voice" for e in late)


def test_all_faces_lists_every_face_by_track_and_keeps_the_main_face_fused(analyzer: LiveAnalyzer,
                                                                           clips: dict[str, Path]) -> None:
    """Two real faces side by side (the RAVDESS actor left, the CREMA-D one right) played live with
    ``all_faces``: each event lists both, each on its own side under its own track for the whole clip, with a
    label of its own; the event's face is the main face's; without ``all_faces`` there is no list."""
    import cv2

    from avemo.commands.live import event_line
    from avemo.media import iter_frames

    rav = [cv2.resize(f.image, (360, 360)) for f in iter_frames(clips["ravdess_mp4"], 10.0, end=2.0)]
    cre = [cv2.resize(f.image, (480, 360)) for f in iter_frames(clips["cremad_hap"], 10.0, end=2.0)]
    n = min(len(rav), len(cre))

    def source() -> LiveSource:
        frames = iter([("video", i / 10.0, np.concatenate([rav[i], cre[i]], axis=1)) for i in range(n)])
        return LiveSource("two", [frames], has_video=True, has_audio=False, paced=True)

    events: list[LiveEvent] = []
    analyzer.run(source(), events.append, speed=2.0, all_faces=True)
    _check_events(events)
    listed = [e for e in events if e.faces]
    assert len(listed) >= 0.8 * len(events) and all(len(e.faces) == 2 for e in listed)
    sides: dict[int, set[str]] = {}
    for e in listed:
        assert sum(f["main"] for f in e.faces) == 1
        for f in e.faces:
            x0, y0, x1, y1 = f["box"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and f["label"] in EMOTIONS
            _check_probs(f["face"])
            if f["track"] not in sides:  # a track's first frame: its moving average is that frame
                assert f["confidence"] == pytest.approx(max(f["face"].values()), abs=1e-4)
                assert f["label"] == max(f["face"], key=f["face"].get)
            sides.setdefault(f["track"], set()).add("left" if x1 <= 360 / 840 + 0.02 else "right")
            if f["main"]:
                assert e.face == f["face"]
    assert len(sides) == 2 and sorted(map(sorted, sides.values())) == [["left"], ["right"]]
    assert "faces: #" in event_line(listed[0]) and "*" in event_line(listed[0])
    plain: list[LiveEvent] = []
    analyzer.run(source(), plain.append, speed=2.0)
    assert plain and all(e.faces is None for e in plain)


def test_terminal_rendering(analyzer: LiveAnalyzer, clips: dict[str, Path]) -> None:
    from rich.console import Console

    from avemo.commands.live import _panel, bars, event_line

    events: list[LiveEvent] = []
    analyzer.run(clips["cremad_hap"], events.append, duration=1.2, speed=4.0)
    ev = next(e for e in events if e.label is not None)
    line = event_line(ev)
    assert ev.label in line and f"{ev.latency_ms:.0f} ms" in line
    assert len(bars(ev.smoothed).split()) == len(EMOTIONS)
    console = Console(record=True, width=100)
    console.print(_panel(ev))
    text = console.export_text()
    assert ev.label.upper() in text and all(name in text for name in EMOTIONS)


def test_cli_writes_events_and_reports_latency(models: dict[str, str], clips: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out, saved = tmp_path / "events.jsonl", tmp_path / "session"
    code = cli.main(["live", "--source", str(clips["cremad_hap"]), "--plain", "--out", str(out), "--speed", "2",
                     "--face-model", models["face"], "--voice-model", models["voice"],
                     "--fusion-model", models["fusion"], "--save", str(saved)])
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    text = capsys.readouterr().out
    analysed, dropped = (int(n) for n in re.search(r"(\d+) analysed, (\d+) dropped", text).groups())
    assert analysed + dropped >= 8 and len(lines) >= 3  # a slower machine drops more frames, never queues them
    assert [r["time"] for r in lines] == sorted(r["time"] for r in lines)
    assert {"time", "label", "confidence", "face", "voice", "fused", "smoothed", "latency_ms"} <= set(lines[0])
    assert all(r["label"] in EMOTIONS for r in lines if r["label"] is not None)
    assert "latency frame->label: median" in text and "p95" in text and "dropped" in text
    assert text.count("ms") >= len(lines)  # one plain line per event
    # --save: the session written as avemo analyze writes a file, one row per event
    import pandas as pd

    timeline = pd.read_csv(saved / "timeline.csv")
    assert list(timeline["start"]) == [r["time"] for r in lines]
    assert list(timeline["label"].fillna("")) == [r["label"] or "" for r in lines]
    for name in ("timeline.json", "summary.json", "timeline.vtt", "timeline.png"):
        assert (saved / name).stat().st_size > 0, name
    assert json.loads((saved / "live.json").read_text())["events"] == len(lines)
    assert json.loads((saved / "summary.json").read_text())["dominant"] in EMOTIONS


def test_cli_missing_source_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.mp4"
    assert cli.main(["live", "--source", str(missing), "--plain"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err and "Traceback" not in err


def test_cli_absent_webcam_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["live", "--source", "webcam:63", "--plain"]) == 2
    err = capsys.readouterr().err
    assert "/dev/video63" in err and "webcam" in err
    assert cli.main(["live", "--source", "clip.mp4", "--mic"]) == 2
    assert "--mic goes with a webcam" in capsys.readouterr().err


def test_absent_microphone_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="microphone"):
        open_device("alsa", "avemo_no_such_pcm", "microphone")


def test_parse_source() -> None:
    assert parse_source("webcam").target == "/dev/video0"
    assert parse_source("webcam:2").target == "/dev/video2"
    assert parse_source("/dev/video1").kind == "webcam"
    assert parse_source("rtsp://cam.local/live").kind == "url"
    assert parse_source("clip.mp4").kind == "file"
    assert parse_source("webcam", "default").mic == ("alsa", "default")
    assert parse_source("webcam", "pulse:default").mic == ("pulse", "default")
    assert parse_source("webcam", "alsa:hw:1,0").mic == ("alsa", "hw:1,0")
    with pytest.raises(AvemoError):
        parse_source("webcam:x")
    with pytest.raises(AvemoError):
        parse_source("clip.mp4", "default")


def test_latency_stats() -> None:
    st = latency_stats([10.0, 20.0, 30.0, 40.0, 1000.0])
    assert st["median"] == 30.0 and st["max"] == 1000.0 and 40.0 < st["p95"] < 1000.0
    assert latency_stats([]) == {}


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]) -> Path:
    """8 s of the RAVDESS actor saying her sentence twice or more, H.264 + AAC."""
    from avemo.serve.harness import looped_clip

    return looped_clip(8.0, tmp_path_factory.mktemp("live-talk") / "talk_8s.mp4", video=clips["ravdess_mp4"],
                       audio=clips["ravdess_wav"])


def test_text_transcribes_each_utterance_and_plain_words_sit_out(analyzer: LiveAnalyzer, talk: Path) -> None:
    """``text``: each utterance is transcribed once it ends (a pause), beside the frames; its words and their
    emotions ride on the events that follow; a sentence that states no feeling ("Kids are talking by the door")
    sits out of the fusion (weight 0), as in the offline ``--text`` analysis. Without ``text`` nothing changes."""
    events: list[LiveEvent] = []
    s = analyzer.run(talk, events.append, speed=2.0, text=True, language="en")
    _check_events(events)
    said = [e for e in events if e.transcript is not None]
    assert s.utterances is not None and s.utterances >= 2 and said, s.format()
    assert "utterances transcribed" in s.format() and s.stage_ms["text"] > 0
    assert events[0].transcript is None  # the first words come after the first pause
    for e in said:
        assert "talking by the door" in e.transcript.lower(), e.transcript
        _check_probs(e.text)
        assert e.text_emotion_words == 0 and e.weights is not None and e.weights["text"] == 0.0
    from rich.console import Console

    from avemo.commands.live import _panel, event_line

    console = Console(record=True, width=120)
    console.print(_panel(said[0]))
    shown = console.export_text()
    assert f'said: "{said[0].transcript}"' in shown and "not fused" in shown and "text" in shown
    assert said[0].transcript in event_line(said[0])
    from avemo.inference.result import EmotionTimeline

    timeline = EmotionTimeline.from_events(events)  # what avemo live --save writes: the words kept
    assert "text" in timeline.modalities and timeline["transcript"].str.contains("door", case=False).any()
    assert (timeline["weight_text"] == 0).all() and timeline["text_emotion_words"].dropna().eq(0).all()
    plain: list[LiveEvent] = []
    s = analyzer.run(talk, plain.append, speed=4.0, duration=3.0)
    assert s.utterances is None and all(e.transcript is None and e.text is None for e in plain)
    assert all("text" not in (e.weights or {}) for e in plain)


def test_speech_the_text_model_cannot_read_leaves_the_words_out_and_the_run_going(analyzer: LiveAnalyzer,
                                                                                  data: Path) -> None:
    """Italian speech (EMOVO; the text bundle reads English): each utterance is transcribed and shown, its
    words carry no emotions and count no feeling (None), and the run goes on to its summary (it once crashed on
    the NaN count of such an utterance)."""
    import numpy as np

    from avemo.media import read_audio

    speech = read_audio(data / "speech-extra-16k" / "emovo" / "f1" / "dis-f1-b1.flac", 16000)
    pause = np.zeros(16000, np.float32)
    wave = np.concatenate([speech, pause, speech, pause])
    audio = [("audio", (i + 800) / 16000, wave[i:i + 800]) for i in range(0, wave.size - 799, 800)]
    source = LiveSource("italian", [iter(audio)], has_video=False, has_audio=True, paced=True)
    events: list[LiveEvent] = []
    s = analyzer.run(source, events.append, speed=4.0, text=True)
    said = [e for e in events if e.transcript]
    assert s.utterances >= 1 and said, s.format()
    assert all(e.text is None and e.text_emotion_words is None for e in said)
    assert all(e.weights is None or e.weights.get("text", 0.0) == 0.0 for e in said)


def test_words_that_state_a_feeling_join_the_fusion(analyzer: LiveAnalyzer, talk: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The fusion side of live text: the transcription is replaced by a fixed English sentence stating a feeling
    (no such speech is in the shared data); the real text bundle scores it, its gate opens and the words weigh
    in the fused answer of the events that follow."""
    model = analyzer.text_model("en")
    monkeypatch.setattr(model, "utterance", lambda wave: model.sentence("I feel so angry about this", "en"))
    events: list[LiveEvent] = []
    analyzer.run(talk, events.append, speed=2.0, text=True, language="en")
    said = [e for e in events if e.transcript is not None]
    assert said and all(e.transcript == "I feel so angry about this" for e in said)
    for e in said:
        assert e.text_emotion_words >= 1 and max(e.text, key=e.text.get) == "angry"
        assert e.weights["text"] > 0.05 and sum(e.weights.values()) == pytest.approx(1.0, abs=1e-3)


def test_cli_text_settings_are_checked_before_anything_runs(capsys: pytest.CaptureFixture[str],
                                                             clips: dict[str, Path]) -> None:
    assert cli.main(["live", "--source", str(clips["cremad_hap"]), "--language", "en"]) == 2
    assert "--language applies to --text" in capsys.readouterr().err
    assert cli.main(["live", "--source", str(clips["cremad_hap"]), "--text", "--language", "xx"]) == 2
    assert "unknown language 'xx'" in capsys.readouterr().err


def test_live_benchmark_runs_and_renders(tmp_path: Path) -> None:
    """``avemo bench live`` on a short video, one round: every row measured (the two-person one with two faces a
    frame), the section written and stored."""
    out, results = tmp_path / "BENCH.md", tmp_path / "results"
    assert cli.main(["bench", "live", "--seconds", "4", "--repeat", "1", "--out", str(out),
                     "--results", str(results)]) == 0
    stored = json.loads((results / "speed" / "live.json").read_text())
    plain, text, faces = stored["rows"].values()
    assert 0 < plain["median"] <= plain["p95"] <= plain["max"] <= plain["max_of_runs"]
    assert faces["processed"] >= 1 and faces["stage_ms"]["face model"] > 0 and faces["faces_per_event"] > 1.5
    assert plain["utterances"] is None and text["utterances"] >= 1 and text["stage_ms"]["text"] > 0
    section = out.read_text()
    assert "## Live: latency from frame to label" in section and "face + voice + text (--text)" in section
    assert "two people, every face (--all-faces)" in section

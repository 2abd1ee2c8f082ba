import json
import os

import numpy as np
import pandas as pd
import pytest

from avemo.inference.result import EmotionTimeline, prob_columns
from avemo.labels import EMOTIONS


@pytest.fixture()
def timeline() -> EmotionTimeline:
    rng = np.random.default_rng(0)
    n = 6
    cols = {"start": np.arange(n, dtype=float), "end": np.arange(n) + 3.0,
            "face": [True, True, True, False, False, True], "speech": [True, True, False, True, False, True],
            "source": ["av", "av", "face", "voice", "none", "av"]}
    for modality in ("face", "voice", "fused"):
        probs = rng.dirichlet(np.ones(len(EMOTIONS)), n)
        for j, col in enumerate(prob_columns(modality)):
            cols[col] = probs[:, j]
    tl = EmotionTimeline(pd.DataFrame(cols))
    tl.loc[~tl["face"], prob_columns("face")] = np.nan
    tl.loc[~tl["speech"], prob_columns("voice")] = np.nan
    fused = tl.probabilities("fused")
    tl["label"] = [EMOTIONS[i] for i in fused.argmax(1)]
    tl["confidence"] = fused.max(1)
    tl.attrs.update(source="clip.mp4", labels=list(EMOTIONS), models={"face": "face.x"})
    return tl


def test_slicing_keeps_type_and_metadata(timeline):
    part = timeline[timeline["face"]]
    assert isinstance(part, EmotionTimeline)
    assert part.attrs["source"] == "clip.mp4"


def test_summary_ignores_windows_without_any_modality(timeline):
    s = timeline.summary()
    assert s["windows"] == 6
    assert s["face_coverage"] == pytest.approx(4 / 6)
    assert sum(s["fused_distribution"].values()) == pytest.approx(1.0, abs=1e-3)
    assert s["dominant"] in EMOTIONS
    assert sum(s["label_share"].values()) == pytest.approx(1.0, abs=1e-3)
    # the face distribution only averages windows with a face
    mask = timeline["face"] & (timeline["source"] != "none")
    expected = timeline.loc[mask, prob_columns("face")].to_numpy().mean(0)
    assert list(s["face_distribution"].values()) == pytest.approx(expected.round(4).tolist(), abs=1e-4)


def test_loading_something_else_names_the_file(tmp_path):
    from avemo.errors import AvemoError

    cases = {"done.json": '{"rc": 0}', "list.json": "[1, 2]", "broken.json": '{"windows": [', "bytes.json": None}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_bytes(b"\xff\xfe\x00garbage") if text is None else path.write_text(text)
        with pytest.raises(AvemoError, match=name):
            EmotionTimeline.load_json(path)


def test_saving_round_trips(timeline, tmp_path):
    text = timeline.save_json(tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert json.loads(text) == doc
    assert doc["metadata"]["source"] == "clip.mp4" and len(doc["windows"]) == 6
    back = EmotionTimeline.load_json(tmp_path / "t.json")
    assert back.attrs["models"] == {"face": "face.x"}
    assert np.allclose(back.probabilities("fused"), timeline.probabilities("fused"))
    timeline.to_csv(tmp_path / "t.csv", index=False)
    assert pd.read_csv(tmp_path / "t.csv").shape == timeline.shape
    timeline.to_parquet(tmp_path / "t.parquet")
    assert pd.read_parquet(tmp_path / "t.parquet").attrs["source"] == "clip.mp4"


def test_pandas_own_to_json_is_left_alone(timeline):
    records = json.loads(timeline.to_json(orient="records"))  # pandas' method, its own format
    assert len(records) == 6 and "fused_happy" in records[0]


def test_live_events_become_a_timeline():
    from avemo.inference.events import LiveEvent

    probs = dict(zip(EMOTIONS, np.full(8, 1 / 8), strict=True))
    events = [LiveEvent(time=0.2, label="happy", confidence=0.5, source="face", face=probs, voice=None,
                        fused=probs, smoothed=probs, latency_ms=12.0),
              LiveEvent(time=1.0, label=None, confidence=None, source="none", face=None, voice=None, fused=None,
                        smoothed=None, latency_ms=3.0, speech_fraction=0.0)]
    tl = EmotionTimeline.from_events(events, source="webcam")
    assert list(tl["start"]) == [0.2, 1.0] and list(tl["source"]) == ["face", "none"]
    assert tl["face"].tolist() == [True, False] and np.isnan(tl.probabilities("voice")).all()
    assert tl.attrs["source"] == "webcam" and tl.summary()["windows"] == 2


def test_plot_of_a_single_window_is_drawn_over_its_span(timeline, tmp_path):
    one = timeline.iloc[:1]
    fig = one.plot()
    x0, x1 = fig.axes[0].get_xlim()
    assert x1 - x0 == pytest.approx(float(one["end"].iloc[0] - one["start"].iloc[0]))


def test_plot_says_why_a_row_is_empty(timeline):
    """A modality absent from every window gets a note on its row (no audio track / no speech / no face); one
    absent from some windows gets them shaded and says so on the axis."""
    def notes(tl: EmotionTimeline) -> list[str]:
        return [t.get_text() for ax in tl.plot().axes for t in ax.texts]

    silent = timeline.copy()
    silent.loc[:, prob_columns("voice")] = np.nan
    silent.attrs["media"] = {"has_audio": False, "has_video": True}
    assert notes(silent) == ["no audio track"]
    silent.attrs["media"] = {"has_audio": True, "has_video": True}
    assert notes(silent) == ["no speech found (voice activity detection)"]
    fig = timeline.plot()
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == []
    assert fig.axes[0].get_ylabel() == "face\n(grey: no face)"
    assert fig.axes[1].get_ylabel() == "voice\n(grey: no speech)"


def test_plot_writes_a_png(timeline, tmp_path):
    timeline.plot(tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_a_saved_plot_keeps_its_labels_and_legends_inside_the_figure(timeline, tmp_path):
    """The file's figure has fixed margins (no tight_layout): the longest y labels (three lines and a track) and
    the legends right of the panels must still fall inside the picture."""
    two = pd.concat([timeline.assign(track=0), timeline.assign(track=1)], ignore_index=True)
    tl = EmotionTimeline(two)
    tl.attrs.update(timeline.attrs)
    tl.loc[tl.index[:2], prob_columns("voice")] = np.nan  # "voice\n(grey: no speech)\ntrack 0"
    fig = tl.plot(tmp_path / "t.png")
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    labels = [ax.yaxis.label for ax in fig.axes]
    assert max(label.get_text().count("\n") for label in labels) == 2
    for artist in [*labels, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]:
        box = artist.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height, artist


def test_saving_a_plot_leaves_pyplot_and_the_backend_alone(tmp_path):
    """Writing the PNG uses a bare Figure: no pyplot import (0.2 s of every command-line run) and no switch of
    the user's matplotlib backend. A fresh process, as a user's."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib\n"
        "import numpy as np, pandas as pd\n"
        "from avemo.inference.result import EmotionTimeline, prob_columns\n"
        "cols = {'start': [0.0, 1.0], 'end': [3.0, 4.0], 'face': [True, True], 'speech': [False, False]}\n"
        "cols.update({c: [0.125, 0.125] for m in ('face', 'fused') for c in prob_columns(m)})\n"
        "cols.update({c: [np.nan, np.nan] for c in prob_columns('voice')})\n"
        "backend = matplotlib.get_backend()\n"
        f"EmotionTimeline(pd.DataFrame(cols)).plot({str(tmp_path / 't.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert matplotlib.get_backend() == backend, matplotlib.get_backend()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "svg"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_evidence_columns_read_each_modality_over_its_own_classes():
    """A seven-class face (no calm) is read over its seven classes, a flat one has certainty 0, an absent window
    NaN."""
    from avemo.inference.result import evidence_columns

    face7 = tuple(e for e in EMOTIONS if e != "calm")
    face = np.zeros((3, len(EMOTIONS)))
    face[0, EMOTIONS.index("happy")], face[0, EMOTIONS.index("sad")] = 0.7, 0.3
    face[1, [EMOTIONS.index(e) for e in face7]] = 1 / 7  # flat over its own classes (calm is 0, not a class)
    face[2] = np.nan
    cols = evidence_columns({"face": face}, {"face": face7})
    assert set(cols) == {"confidence_face", "margin_face", "certainty_face"}
    np.testing.assert_allclose(cols["confidence_face"][:2], [0.7, 1 / 7], atol=1e-4)
    np.testing.assert_allclose(cols["margin_face"][:2], [0.4, 0.0], atol=1e-4)
    assert cols["certainty_face"][0] == pytest.approx(1 - (-(0.7 * np.log(0.7) + 0.3 * np.log(0.3)) / np.log(7)),
                                                      abs=1e-4)
    assert cols["certainty_face"][1] == pytest.approx(0.0, abs=1e-4)
    assert all(np.isnan(c[2]) for c in cols.values())


def test_the_plot_helper_draws_what_this_process_draws_and_falls_back_when_it_dies(timeline, tmp_path):
    """``avemo analyze`` draws its plots in a helper process (matplotlib imported there while the command starts
    up): the same picture as drawn here; a helper that died leaves the plot to this process, never lost."""
    import matplotlib.image

    from avemo.inference.plot_worker import PlotWorker

    timeline.plot(tmp_path / "here.png")
    with PlotWorker() as worker:
        assert worker.alive
        worker.plot(timeline, tmp_path / "helper.png")
        assert worker.alive  # it drew the plot, it did not fall back
        worker._proc.kill()
        worker._proc.wait()
        worker.plot(timeline, tmp_path / "after_death.png")
        assert not worker.alive
    here = matplotlib.image.imread(tmp_path / "here.png")
    for name in ("helper.png", "after_death.png"):
        assert np.array_equal(matplotlib.image.imread(tmp_path / name), here), name


@pytest.mark.skipif(os.name != "posix", reason="the helper's answer is awaited with select (POSIX)")
def test_a_hung_plot_helper_is_ended_and_the_plot_drawn_here(timeline, tmp_path, monkeypatch):
    import signal

    from avemo.inference import plot_worker

    monkeypatch.setattr(plot_worker, "TIMEOUT", 0.5)
    with plot_worker.PlotWorker() as worker:
        proc = worker._proc
        proc.send_signal(signal.SIGSTOP)  # alive but never answering
        worker.plot(timeline, tmp_path / "t.png")
        assert not worker.alive and proc.poll() is not None
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"

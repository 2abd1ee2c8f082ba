"""``avemo score``: the shipped models on labelled real clips (the shared CREMA-D and RAVDESS ones, a cut file, a
missing one), the scores recomputed from the rows they come from, resumption, Ctrl-C, and the readings of an
answer (within the data's classes, over all eight, no answer counting as wrong)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avemo.cli import main
from avemo.datasets import Sample
from avemo.inference.scoring import NO_ANSWER, ScoreInterrupted, metrics, score, select
from avemo.labels import EMOTIONS


@pytest.fixture()
def labelled(clips, tmp_path) -> Path:
    """A manifest (path,label; no speaker) of the three CREMA-D clips, the RAVDESS video, a cut FLV, a missing
    file and a row with a label avemo does not use ('joy')."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("cremad_ang", "cremad_hap", "cremad_sad"):
        shutil.copy(clips[name], folder / clips[name].name)
    (folder / "cut.flv").write_bytes(clips["cremad_ang"].read_bytes()[:3000])
    rows = [(clips["cremad_ang"].name, "angry"), (clips["cremad_hap"].name, "happy"),
            (clips["cremad_sad"].name, "sad"), ("cut.flv", "angry"), ("missing.mp4", "sad"),
            (str(clips["ravdess_mp4"]), "surprised"), ("other.flv", "joy")]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(folder / "labels.csv", index=False)
    return folder / "labels.csv"


def test_a_manifest_is_scored_per_modality_and_a_bad_file_fails_alone(labelled, tmp_path, capsys):
    out = tmp_path / "scores"
    assert main(["score", str(labelled), "--out", str(out)]) == 1  # two files failed
    err = capsys.readouterr().err
    assert "label 'joy' is not one of the canonical labels" in err and "--label-names" in err
    assert "cut.flv" in err and "missing.mp4: file not found" in err
    assert "4 scored, 0 kept from an earlier run, 2 failed" in err
    rows = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert len(rows) == 6 and (rows["status"] == "done").sum() == 4
    assert rows.set_index("label").loc["surprised", "speaker"] == "manifest:unknown"
    m = json.loads((out / "metrics.json").read_text())
    assert m["clips"] == 4 and m["failed"] == 2 and m["classes"] == ["happy", "sad", "angry", "surprised"]
    done = rows[rows["status"] == "done"]
    for modality in ("face", "voice", "fused"):  # the figures follow from the rows
        probs = done[[f"{modality}_{c}" for c in m["classes"]]].apply(pd.to_numeric, errors="coerce")
        answers = [m["classes"][int(np.argmax(p))] if not np.isnan(p).any() else NO_ANSWER for p in probs.to_numpy()]
        accuracy = np.mean([a == t for a, t in zip(answers, done["label"])])
        assert m[modality]["within"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
        assert m[modality]["within"]["answered"] == pytest.approx(np.mean([a != NO_ANSWER for a in answers]))
        assert np.sum(m[modality]["within"]["confusion"]) == 4
        assert (out / f"confusion_{modality}.png").stat().st_size > 0
    assert m["voice"]["within"]["answered"] == 0.75  # the RAVDESS video has no sound track
    # the same command again keeps the finished clips and tries the failed ones again
    assert main(["score", str(labelled), "--out", str(out)]) == 1
    assert "0 scored, 4 kept from an earlier run, 2 failed" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["fused"] == m["fused"]
    # other models into the same folder: refused, nothing mixed
    assert main(["score", str(labelled), "--out", str(out), "--voice-model", "voice.ravdess8"]) == 2
    assert "holds scores of other models or settings" in capsys.readouterr().err


def test_readings_of_an_answer_and_no_answer_counting_as_wrong():
    """Within the data's classes the argmax skips classes the data lacks; over all eight it does not; a clip
    without an answer is wrong in both and lowers ``answered``."""
    def row(label: str, probs: dict[str, float] | None) -> dict:
        r = {"uid": label, "path": "x", "corpus": "c", "speaker": f"c:{label[0]}", "label": label, "status": "done"}
        r.update({f"voice_{e}": ("" if probs is None else probs.get(e, 0.0)) for e in EMOTIONS})
        return r

    table = pd.DataFrame([
        row("happy", {"calm": 0.6, "happy": 0.3, "sad": 0.1}),  # calm first: right within, wrong over eight
        row("sad", {"sad": 0.9, "happy": 0.1}),
        row("sad", {"happy": 0.8, "sad": 0.2}),
        row("happy", None),  # no speech
    ])
    m = metrics(table, ["voice"])
    within, open_ = m["voice"]["within"], m["voice"]["open"]
    assert m["classes"] == ["happy", "sad"] and m["chance_uar"] == 0.5
    assert within["accuracy"] == 0.5 and within["uar"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert open_["accuracy"] == 0.25 and open_["uar"] == pytest.approx((0 + 1 / 2) / 2)
    assert within["answered"] == open_["answered"] == 0.75
    assert within["confusion"] == [[1, 0, 1], [1, 1, 0]] and within["columns"] == ["happy", "sad", NO_ANSWER]
    assert within["by_speaker"]["c:h"] == {"n": 2, "accuracy": 0.5, "uar": 0.5}
    # what the fusion did, clip by clip: fused right where the voice was wrong, and wrong where it was right
    table["fused_happy"], table["fused_sad"] = [0.9, 0.6, 0.4, 0.2], [0.1, 0.4, 0.6, 0.8]
    for e in EMOTIONS:
        if e not in ("happy", "sad"):
            table[f"fused_{e}"] = 0.0
    effect = metrics(table, ["voice", "fused"])["fusion"]
    assert effect["voice"] == {"fixed": 1, "broke": 1}  # clip 3: voice wrong, fused right; clip 2 the reverse
    assert effect["none_right_fused_right"] == 1 and effect["some_right_fused_wrong"] == 1


def test_a_limited_draw_is_balanced_and_the_same_every_time(tmp_path):
    samples = [Sample(tmp_path / f"{label}{i}.wav", label, "c:1", "c", "audio", f"c:{label}{i}")
               for label, n in (("happy", 10), ("sad", 3), ("angry", 7)) for i in range(n)]
    picked = select(samples, 9, seed=0)
    assert [s.label for s in picked].count("sad") == 3 and len(picked) == 9
    assert {s.label for s in picked[:3]} == {"happy", "sad", "angry"}
    assert picked == select(samples, 9, seed=0) and picked != select(samples, 9, seed=1)


def test_ctrl_c_keeps_what_was_scored_and_the_rerun_goes_on(labelled, tmp_path, monkeypatch):
    from avemo.datasets import read_manifest
    from avemo.inference.analyzer import Analyzer

    analyzer = Analyzer()
    samples = [s for s in read_manifest(labelled, check_files=False, require_speaker=False)
               if s.path.exists() and s.path.suffix == ".flv" and s.path.name != "cut.flv"]
    calls = {"n": 0}
    real = type(analyzer).analyze

    def interrupted_third(self, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(type(analyzer), "analyze", interrupted_third)
    out = tmp_path / "scores"
    with pytest.raises(ScoreInterrupted) as stop:
        score(samples, analyzer, out)
    assert stop.value.report.scored == 2 and stop.value.report.metrics["not_scored"] == 1
    assert len(pd.read_csv(out / "predictions.csv")) == 2
    assert json.loads((out / "metrics.json").read_text())["clips"] == 2
    monkeypatch.setattr(type(analyzer), "analyze", real)
    again = score(samples, analyzer, out)
    assert (again.scored, again.reused, again.metrics["clips"]) == (1, 2, 3)


def test_data_that_cannot_be_scored_says_why(tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    assert main(["score", str(tmp_path / "videos")]) == 2
    assert "say how its files are labelled with --corpus" in capsys.readouterr().err
    assert main(["score", "nowhere"]) == 2
    assert "not a manifest CSV, a folder or a corpus name" in capsys.readouterr().err
    (tmp_path / "labels.csv").write_text("file,emotion\na.wav,happy\n")
    assert main(["score", str(tmp_path / "labels.csv")]) == 2
    assert "missing columns ['path', 'label']" in capsys.readouterr().err


def test_a_corpus_the_models_learnt_from_is_named_as_not_held_out(tmp_path, capsys, monkeypatch):
    """RAVDESS by name under $AVEMO_DATA (its speech, 16 clips drawn evenly): the voice bundle and the fusion
    learnt from it, and the command says so before the scores."""
    from avemo.config import data_root

    if not (data_root() / "ravdess-speech-16k").is_dir():
        pytest.skip("RAVDESS speech not in $AVEMO_DATA")
    out = tmp_path / "ravdess"
    assert main(["score", "ravdess", "--limit", "16", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "voice.multi6, fusion.reliability learnt from ravdess" in err and "not held out" in err, err
    assert "no clip had a face" in err
    m = json.loads((out / "metrics.json").read_text())
    assert m["clips"] == 16 and set(m["label_counts"].values()) == {2} and "face" not in [
        p.stem.removeprefix("confusion_") for p in out.glob("confusion_*.png")]


def test_the_python_api_scores_as_the_command_does(labelled, tmp_path, capsys):
    """``avemo.score(manifest, out)`` gives the metrics the command writes for the same clips."""
    import avemo

    report = avemo.score(labelled, tmp_path / "api")
    assert report.scored == 4 and len(report.failed) == 2 and report.out_dir == tmp_path / "api"
    assert main(["score", str(labelled), "--out", str(tmp_path / "cli")]) == 1
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert {m: report.metrics[m] for m in ("face", "voice", "fused")} == {m: cli[m] for m in ("face", "voice", "fused")}
    with pytest.raises(avemo.AvemoError, match="no labelled media files found of kind image"):
        avemo.score(labelled, tmp_path / "none", kind="image")

"""The training harness: metrics, a real recipe end to end on a tiny subset, resuming, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avemo.cli import main
from avemo.training import loop
from avemo.training.metrics import classification_scores, summarize_folds

LABELS = ("a", "b", "c")


def test_scores_on_known_inputs():
    s = classification_scores([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], LABELS)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert s["uar"] == pytest.approx(2 / 3)
    assert s["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # F1 per class: a 0.5, b 0.8, c 2/3
    assert s["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_summary_mean_std_and_pooled_confusion():
    f1 = classification_scores([0, 1], [0, 1], LABELS)
    f2 = classification_scores([0, 1], [1, 1], LABELS)
    s = summarize_folds([f1, f2])
    assert s["accuracy"]["mean"] == pytest.approx(0.75)
    assert s["accuracy"]["std"] == pytest.approx(0.25)
    assert s["accuracy"]["per_fold"] == [1.0, 0.5]
    assert s["confusion"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]


TINY = """
name: tiny_voice
kind: voice
corpus: ravdess
protocol: {{name: holdout, test_speakers: [2], val_speakers: 0}}
data: {{speakers: [1, 2], per_speaker: 6, root: "{root}"}}
seed: 0
features: {{mel: {{}}, trim_db: 40, window_s: 1.0, eval_hop_s: 0.5}}
model: {{name: voice, kwargs: {{channels: [4, 8], emb_dim: 8}}}}
augment: {{specaugment: {{freq: 4, time: 10, n: 1}}, mixup: 0.2}}
optim: {{lr: 0.003, batch_size: 4}}
train: {{epochs: 1, warmup_epochs: 1}}
"""


@pytest.fixture()
def tiny_recipe(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "tiny_voice.yaml"
    path.write_text(TINY.format(root=data / "ravdess-speech-16k"))
    return path


def test_recipe_end_to_end_writes_json_and_png(tiny_recipe: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert main(["train", str(tiny_recipe), "--run-dir", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(tiny_recipe), "--run-dir", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    row = results["rows"]["tiny_voice"]
    assert len(row["folds"]) == 1 and row["folds"][0]["n"] == 6
    assert row["folds"][0]["test_speakers"] == ["ravdess:02"]
    assert set(row["summary"]) >= {"accuracy", "macro_f1", "uar", "confusion"}
    assert (run / "plots" / "tiny_voice" / "confusion_fold0.png").stat().st_size > 1000
    assert (run / "plots" / "tiny_voice" / "confusion_pooled.png").is_file()
    assert results["machine"]["cpu_count"] and results["commit"]
    log = loop.read_jsonl(run / "fold_0" / "log.jsonl")
    assert [r["epoch"] for r in log] == [0]


def test_resume_continues_at_the_next_epoch(tiny_recipe: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert main(["train", str(tiny_recipe), "--run-dir", str(run), "--quiet"]) == 0
    ckpt = loop.load_checkpoint(run / "fold_0" / "checkpoint.pt")
    assert json.loads(ckpt["state"])["epoch"] == 1 and "optim" in ckpt  # one epoch done
    (run / "fold_0" / "predictions.npz").unlink()  # as if interrupted after epoch 0
    assert main(["train", str(tiny_recipe), "--run-dir", str(run), "--quiet", "--set", "train.epochs=3"]) == 0
    log = loop.read_jsonl(run / "fold_0" / "log.jsonl")
    assert [r["epoch"] for r in log] == [0, 1, 2]  # epoch 0 was not run again
    assert json.loads(loop.load_checkpoint(run / "fold_0" / "checkpoint.pt")["state"])["epoch"] == 3


def test_folds_are_actor_independent_with_inner_validation(data: Path):
    from avemo.training.data import load_samples, make_folds
    from avemo.training.recipe import load_recipe

    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "voice_ravdess.yaml")
    samples = load_samples(recipe)
    folds = make_folds(recipe, samples)
    assert len(folds) == 6
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(samples)))  # every clip tested exactly once
    for f in folds:
        spk = {part: {samples[i].speaker for i in getattr(f, part)} for part in ("train", "val", "test")}
        assert len(spk["test"]) == 4 and len(spk["val"]) == 4 and len(spk["train"]) == 16
        assert not (spk["train"] & spk["val"]) and not (spk["test"] & (spk["train"] | spk["val"]))


def test_bench_renders_every_stored_result(tmp_path: Path):
    results = Path(__file__).parents[1] / "benchmarks" / "results"
    if not any(results.glob("*.json")):
        pytest.skip("no stored results yet")
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nspeed section kept\n")
    assert main(["bench", "accuracy", "--results", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    assert "speed section kept" in text and "## Accuracy" in text
    for path in results.glob("*.json"):
        res = json.loads(path.read_text())
        if "rows" not in res:  # another benchmark's file, not an avemo evaluate result
            continue
        assert f"`{res['recipe']}`" in text and res["commit"] in text

"""The training harness: metrics, a real recipe end to end on a tiny subset, resuming, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avemo.cli import main
from avemo.labels import EMOTIONS
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


# ---- the Trainer itself, on a small real problem: RAVDESS log-mel statistics -> emotion --------------------
class _StatsTask:
    """A linear model on each clip's mean log-mel (actors 1 and 2, 120 clips): small, real and quick."""

    metric = "val_acc"

    def __init__(self, data: Path) -> None:
        from avemo.audio import MelConfig, log_mel
        from avemo.datasets import read_corpus
        from avemo.labels import index
        from avemo.media import read_audio

        samples = [s for s in read_corpus("ravdess", data / "ravdess-speech-16k") if s.speaker in
                   ("ravdess:01", "ravdess:02")]
        cfg = MelConfig(n_mels=32)
        self.x = torch.from_numpy(np.stack([log_mel(read_audio(s.path), cfg).mean(1) for s in samples]))
        self.x = (self.x - self.x.mean(0)) / self.x.std(0)
        self.y = torch.from_numpy(index(EMOTIONS, [s.label for s in samples]))
        self.val = np.arange(len(samples)) % 5 == 0

    def build_model(self) -> torch.nn.Module:
        return torch.nn.Linear(32, len(EMOTIONS))

    def steps_per_epoch(self) -> int:
        return 4

    def batches(self, epoch, gen, rng):
        idx = np.flatnonzero(~self.val)
        order = idx[torch.randperm(len(idx), generator=gen).numpy()]
        for part in np.array_split(order, self.steps_per_epoch()):
            yield self.x[part], self.y[part]

    def loss(self, model, batch):
        x, y = batch
        logits = model(x)
        return torch.nn.functional.cross_entropy(logits, y), int((logits.argmax(1) == y).sum()), len(y)

    def validate(self, model):
        with torch.no_grad():
            return {"val_acc": float((model(self.x[self.val]).argmax(1) == self.y[self.val]).float().mean())}


@pytest.fixture(scope="module")
def stats_task(data: Path) -> _StatsTask:
    return _StatsTask(data)


def _fit(task, out: Path, **train):
    from avemo.training.recipe import Optim, Train
    from avemo.training.trainer import Trainer

    cfg = {"epochs": 6, "warmup_epochs": 1, "val_every": 1, **train}
    return Trainer(task, optim=Optim(lr=0.05, weight_decay=0.0), train=Train(**cfg), out_dir=out, seed=(0, 1)).fit()


class _Stop(Exception):
    pass


class _Interrupted(_StatsTask):
    """The same task, interrupted (as by a killed process) when epoch ``stop_at`` starts."""

    def __init__(self, base: _StatsTask, stop_at: int) -> None:
        self.__dict__.update(base.__dict__)
        self.stop_at = stop_at

    def batches(self, epoch, gen, rng):
        if epoch == self.stop_at:
            raise _Stop
        yield from super().batches(epoch, gen, rng)


def test_trainer_interrupted_and_resumed_equals_uninterrupted(stats_task, tmp_path: Path):
    whole = _fit(stats_task, tmp_path / "whole")
    run = tmp_path / "cut"
    with pytest.raises(_Stop):
        _fit(_Interrupted(stats_task, 3), run)
    assert len(loop.read_jsonl(run / "log.jsonl")) == 3
    resumed = _fit(stats_task, run)
    assert [r["epoch"] for r in loop.read_jsonl(run / "log.jsonl")] == list(range(6))  # epochs 0-2 not run again
    torch.testing.assert_close(resumed.weight, whole.weight, atol=0, rtol=0)  # the same draws, the same weights
    again = _fit(stats_task, run)  # a finished run reloads and trains nothing more
    assert len(loop.read_jsonl(run / "log.jsonl")) == 6
    torch.testing.assert_close(again.weight, whole.weight, atol=0, rtol=0)


def test_trainer_keeps_the_best_epoch_and_stops_early(stats_task, tmp_path: Path):
    model = _fit(stats_task, tmp_path / "best", epochs=8, select="best", patience=2)
    log = loop.read_jsonl(tmp_path / "best" / "log.jsonl")
    best = max(r["val_acc"] for r in log)
    assert stats_task.validate(model)["val_acc"] == best  # the returned weights are the best validated ones
    best_epoch = log[-1]["best_epoch"]
    stale = [r for r in log if r["epoch"] > best_epoch]
    assert len(stale) <= 2 and (len(log) == 8 or len(stale) == 2)  # stopped after 2 validations without gain


def test_trainer_time_budget_anneals_within_it(stats_task, tmp_path: Path):
    _fit(stats_task, tmp_path / "budget", epochs=1000, time_budget_min=0.002)  # 0.12 s for a 1000-epoch plan
    log = loop.read_jsonl(tmp_path / "budget" / "log.jsonl")
    assert len(log) < 1000 and log[-1]["progress"] >= 1.0  # stopped by the budget, the schedule run to its end


def test_learning_rate_schedule_warms_up_then_anneals_to_zero():
    from avemo.training.trainer import lr_at

    assert lr_at(0.0, 1.0, 0.1, 0.01) == pytest.approx(0.1)  # the first step already learns
    assert lr_at(0.05, 1.0, 0.1, 0.01) == pytest.approx(0.6)
    assert lr_at(0.1, 1.0, 0.1, 0.01) == pytest.approx(1.0)
    assert lr_at(0.55, 1.0, 0.1, 0.01) == pytest.approx(0.5)
    assert lr_at(1.0, 1.0, 0.1, 0.01) == pytest.approx(0.0) and lr_at(1.3, 1.0, 0.1, 0.01) == pytest.approx(0.0)

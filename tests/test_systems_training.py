"""``kind: system`` recipes through the harness (avemo train / evaluate), the AU adapter, and the
ablation renderer; on real RAVDESS speech + AU data, the shared clips, and clips generated from them."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avemo.bench import ablation
from avemo.cli import main
from avemo.models.blocks.au import swap_visual_encoders
from avemo.training.recipe import RecipeError, load_recipe
from avemo.training.systems import usable

ROOT = Path(__file__).parents[1]
TINY = ["--set", "train.epochs=1", "--set", "data.speakers=[1,5]", "--set", "data.per_speaker=6",
        "--set", "model.kwargs={widths: [8, 16, 32], hidden: 32}", "--quiet"]


def _train_and_evaluate(recipe: Path, run_dir: Path, *extra: str) -> dict:
    assert main(["train", str(recipe), "--run-dir", str(run_dir), *TINY, *extra]) == 0
    assert main(["evaluate", str(recipe), "--run-dir", str(run_dir)]) == 0
    return json.loads((run_dir / "results.json").read_text())


def test_system_recipe_trains_through_avemo_train_on_real_ravdess(data, tmp_path):
    recipe = ROOT / "recipes" / "dixit2024_cnn_ravdess.yaml"
    res = _train_and_evaluate(recipe, tmp_path / "run", "--set", "inputs.video=au35")
    assert res["kind"] == "system" and res["n_speakers"] == 2 and res["n_samples"] == 12
    row = res["rows"]["dixit2024_cnn_ravdess"]
    assert len(row["folds"]) == 2  # actors 1 and 5: the standard folds 0 and 1, each tests its own actor
    assert [f["test_speakers"] for f in row["folds"]] == [["ravdess:01"], ["ravdess:05"]]
    assert all(f["n"] == 6 for f in row["folds"])
    about = row["about"]
    assert about["inputs"] == {"audio": "logmel", "video": "au35"}
    assert 0 < about["n_params_used"] <= about["n_params"]
    assert about["adapter"]["replaced"] == ["encoders.video"] and about["n_params"] > 1000
    fold = json.loads((tmp_path / "run" / "fold_0" / "fold.json").read_text())
    assert fold["epochs"] == 1 and fold["n_params"] == about["n_params"]
    with np.load(tmp_path / "run" / "fold_0" / "predictions.npz") as z:
        assert z["test_probs"].shape == (6, 8) and np.allclose(z["test_probs"].sum(1), 1, atol=1e-5)
    # resumable: a second train finds every fold finished and changes nothing
    before = (tmp_path / "run" / "fold_1" / "predictions.npz").read_bytes()
    assert main(["train", str(recipe), "--run-dir", str(tmp_path / "run"), *TINY, "--set", "inputs.video=au35"]) == 0
    assert (tmp_path / "run" / "fold_1" / "predictions.npz").read_bytes() == before


def test_voice_branch_alone_and_clear_errors(data, tmp_path, capsys):
    recipe = ROOT / "recipes" / "khan2024_mser_ravdess.yaml"
    res = _train_and_evaluate(recipe, tmp_path / "voice", "--set", "inputs.video=none",
                              "--set", "model.kwargs={widths: [8, 16, 32], dim: 32, heads: 2, depth: 1}")
    about = res["rows"]["khan2024_mser_ravdess"]["about"]
    assert about["inputs"] == {"audio": "logmel", "video": "none"}
    assert about["n_params_used"] < about["n_params"]  # the face branch is built but never reached
    # face crops asked of an audio-only corpus: an avemo error naming the problem, not a decoder crash
    assert main(["train", str(recipe), "--run-dir", str(tmp_path / "faces"), *TINY,
                 "--set", "model.kwargs={widths: [8, 16, 32], dim: 32, heads: 2, depth: 1}"]) != 0
    err = capsys.readouterr().err
    assert "need video files" in err and "ravdess-speech-16k" in err
    assert main(["train", str(recipe), "--run-dir", str(tmp_path / "bad"), *TINY, "--set", "inputs.video=pixels",
                 "--set", "model.kwargs={widths: [8, 16, 32], dim: 32}"]) != 0
    assert "inputs.video must be one of" in capsys.readouterr().err
    assert main(["train", str(recipe), "--run-dir", str(tmp_path / "kw"), *TINY]) != 0  # 'hidden' is not MSER's
    err = capsys.readouterr().err
    assert "khan2024_mser_ravdess.yaml" in err and "cannot be built" in err and "hidden" in err


@pytest.mark.parametrize("system", [s for s in ablation.SYSTEMS if s not in ablation.FRAME_VIDEO])
def test_au_adapter_replaces_every_frame_level_visual_encoder(system):
    from avemo.models.registry import create_model

    recipe = ablation.variant_recipe(system, "au_fusion")
    kwargs = copy.deepcopy(dict(recipe.model.kwargs))
    inner = kwargs.setdefault("base_kwargs", {}) if system in ("ma2020_shgr", "goncalves2024_robust") else kwargs
    inner.update(video_frames=1, audio_frames=100)
    model = create_model(system, **kwargs)
    assert swap_visual_encoders(model, in_dim=35)
    model.eval()
    au = torch.randn(3, 1, 1, 1, 35)
    both = model(audio=torch.randn(3, 64, 100), video=au)
    assert both["logits"].shape == (3, 8)
    alone = model(video=au)  # the AU side alone goes through the adapter only
    assert torch.isfinite(alone["logits"]).all()
    model.train()
    model.loss(model(audio=torch.randn(3, 64, 100), video=au), torch.tensor([0, 1, 2])).backward()


def test_usable_keeps_one_file_per_take_with_the_needed_media():
    from avemo.datasets.base import Sample

    def s(kind: str, ext: str, code: str) -> Sample:
        return Sample(path=Path(f"{code}-01-03-01-01-01-01{ext}"), label="happy", speaker="ravdess:01",
                      corpus="ravdess", modality=kind, take="ravdess:01-03-01-01-01-01")

    samples = [s("audio", ".wav", "03"), s("video", ".mp4", "02"), s("av", ".mp4", "01")]
    assert usable(samples, {"audio": "logmel", "video": "faces"}).tolist() == [False, False, True]
    assert usable(samples, {"audio": "logmel", "video": "none"}).tolist() == [True, False, False]
    with pytest.raises(RecipeError, match="need video files"):
        usable(samples[:1], {"audio": "logmel", "video": "faces"})


def _generated_ravdess(clips: dict[str, Path], root: Path) -> Path:
    """Four full-AV RAVDESS-layout clips (actors 1 and 5, happy and angry) cut from the real actor-19
    clip (frames, some mirrored, with its own audio): real faces and speech, generated labels."""
    from avemo.media import iter_frames
    from avemo.media.writer import write_video

    for k, (actor, emo) in enumerate([(1, "03"), (1, "05"), (5, "03"), (5, "05")]):
        frames = [np.ascontiguousarray(f.image[:, ::-1]) if k % 2 else f.image
                  for f in iter_frames(clips["ravdess_mp4"], fps=10, max_side=240, start=0.4 * k, end=0.4 * k + 1.6)]
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / f"01-01-{emo}-01-01-01-{actor:02d}.mp4", frames, fps=10, audio_from=clips["ravdess_wav"])
    return root


@pytest.mark.parametrize("system", ablation.FRAME_VIDEO)
def test_frame_video_systems_train_end_to_end_on_generated_clips(clips, tmp_path, system):
    root = _generated_ravdess(clips, tmp_path / "ravdess")
    recipe = ROOT / "recipes" / f"{system}_ravdess.yaml"
    small = dict(load_recipe(recipe).ablation.kwargs)
    args = ["train", str(recipe), "--run-dir", str(tmp_path / "run"), "--quiet", "--set", "train.epochs=1",
            "--set", f"data.root={root}", "--set", f"model.kwargs={json.dumps(small)}", "--set", "optim.batch_size=2"]
    assert main(args) == 0
    assert main(["evaluate", str(recipe), "--run-dir", str(tmp_path / "run")]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    row = next(iter(res["rows"].values()))
    assert row["about"]["inputs"]["video"] in ("faces", "keyframe") and len(row["folds"]) == 2
    fold = json.loads((tmp_path / "run" / "fold_0" / "fold.json").read_text())
    assert fold["n_test"] == 2
    if row["about"]["inputs"]["video"] == "faces":
        assert fold["face_frames"]["test_frames"] > 0
        assert fold["face_frames"]["test_frames_without_face"] < fold["face_frames"]["test_frames"]


def test_smoke_on_the_real_shared_clips(clips, tmp_path):
    out = ablation.smoke_real_clips("zhang2016_cnnrnn", runs=tmp_path / "runs", results=tmp_path / "res", epochs=1)
    info = json.loads(out.read_text())
    assert info["inputs"] == {"audio": "logmel", "video": "faces"} and info["epochs"] == 1
    assert info["face_frames"]["test_frames"] >= 15  # the 4 s RAVDESS clip at 5 fps
    assert info["face_frames"]["test_frames_without_face"] == 0


def test_ablation_renderer_uses_stored_results_and_marks_missing_rows(data, tmp_path):
    recipe = ROOT / "recipes" / "dixit2024_cnn_ravdess.yaml"
    res = _train_and_evaluate(recipe, tmp_path / "run", "--set", "inputs.video=au35")
    results = tmp_path / "results"
    results.mkdir()
    (results / "dixit2024_cnn__au_fusion.json").write_text(json.dumps(res))
    text = ablation.render(results)
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in text.splitlines()
            if line.startswith("| `") and line.split("|")[2].strip() in ("voice", "au_fusion")}
    summary = res["rows"]["dixit2024_cnn_ravdess"]["summary"]
    measured = rows[("`dixit2024_cnn`", "au_fusion")]
    assert f"{100 * summary['accuracy']['mean']:.1f} ± {100 * summary['accuracy']['std']:.1f}" in measured
    about = res["rows"]["dixit2024_cnn_ravdess"]["about"]
    assert f"| {about['n_params_used']:,} |" in measured  # AU run: both branches reached, all built parameters used
    assert about["n_params_used"] == about["n_params"]
    assert "not run (time)" not in measured
    assert "not run (time)" in rows[("`dixit2024_cnn`", "voice")]
    assert "not run (time)" in rows[("`khan2024_mser`", "au_fusion")]
    assert "not measurable here" in rows[("`mocanu2023_cma`", "au_fusion")]
    assert len(rows) == 2 * len(ablation.SYSTEMS)
    assert "| `goncalves2024_robust` | not run (time) | | |" in text  # the missing-modality table
    # the section replaces only itself in BENCHMARKS.md
    bench = tmp_path / "BENCHMARKS.md"
    bench.write_text("# Benchmarks\n\nkept\n")
    ablation.write_section(results, bench)
    ablation.write_section(results, bench)
    body = bench.read_text()
    assert body.count(ablation.BEGIN) == 1 and "kept" in body
    shutil.rmtree(results)


def test_recipe_audio_front_end_is_used(data, tmp_path, capsys):
    recipe = ROOT / "recipes" / "almulla2024_fvt_ravdess.yaml"  # noise reduction, then log-mel
    small = ["--set", "model.kwargs={face_widths: [8, 16], voice_widths: [8, 16]}", "--set", "inputs.video=none",
             "--set", "data.per_speaker=3"]
    assert main(["train", str(recipe), "--run-dir", str(tmp_path / "nr"), *TINY, *small]) == 0
    with np.load(tmp_path / "nr" / "fold_0" / "predictions.npz") as z:
        assert z["test_probs"].shape == (3, 8)
    assert main(["train", str(recipe), "--run-dir", str(tmp_path / "bad"), *TINY, *small,
                 "--set", "audio_front_end=avemo.audio.no_such_function"]) != 0
    assert "not an importable function" in capsys.readouterr().err


def test_missing_modality_evaluation_reuses_the_trained_fold_models(data, tmp_path):
    tiny = {"data": {"speakers": [1, 5], "per_speaker": 6}, "train.epochs": 1}
    runs, results = tmp_path / "runs", tmp_path / "results"
    written = ablation.run(["goncalves2024_robust"], ["au_fusion"], runs=runs, results=results, overrides=tiny,
                           show=False)
    assert [p.name for p in written] == ["goncalves2024_robust__au_fusion.json"]
    assert ablation.run(["goncalves2024_robust"], ["au_fusion"], runs=runs, results=results, overrides=tiny,
                        show=False) == []  # published rows are not trained again
    out = ablation.missing_modality("goncalves2024_robust", runs=runs, results=results, overrides=tiny)
    acc = json.loads(out.read_text())["accuracy"]
    assert set(acc) == {"both", "voice_only", "au_only"} and all(len(a["per_fold"]) == 2 for a in acc.values())
    both = json.loads(written[0].read_text())["rows"]["goncalves2024_robust__au_fusion"]["summary"]["accuracy"]
    assert acc["both"]["per_fold"] == pytest.approx(both["per_fold"])  # same models, same test clips
    text = ablation.render(results)
    assert "| `goncalves2024_robust` | " + f"{100 * acc['both']['mean']:.1f}" in text
    assert "| `khan2024_mser` | not run (time) |" in text

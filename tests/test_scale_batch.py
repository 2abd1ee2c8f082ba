"""``avemo batch``: the shared clips plus a corrupt file on a local Ray with 2 workers (one Ray session for the
module, a small object store), resumption, and the local engine giving the same timelines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avemo.cli import main
from avemo.scale import store
from avemo.scale.batch import BatchSettings, RaySettings, collect_inputs, run_batch

pytestmark = pytest.mark.slow  # a minute or more on 2 shared cores

CLIPS = ("ravdess_mp4", "ravdess_wav", "ravdess_stereo_wav", "cremad_ang", "cremad_hap", "cremad_sad")


@pytest.fixture(scope="module")
def folder(clips, tmp_path_factory) -> Path:
    """The six shared clips (links) and a corrupt file: the first 4 kB of an FLV, cut inside its header."""
    root = tmp_path_factory.mktemp("batch-in")
    for name in CLIPS:
        (root / clips[name].name).symlink_to(clips[name])
    (root / "broken.flv").write_bytes(clips["cremad_ang"].read_bytes()[:4096])
    return root


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, object_store_memory=80 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_run(folder, ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch-ray")
    result = run_batch(collect_inputs([folder]), out, engine="ray", ray_settings=RaySettings(workers=2))
    return out, result


def test_ray_batch_writes_one_dataset_and_a_status_table(ray_run, folder):
    out, result = ray_run
    status = store.read_status(out).set_index("file")
    assert len(status) == 7 and len(result.records) == 7 and not result.skipped
    done = status[status["status"] == "done"]
    assert set(done.index) == {Path(f).stem for f in os.listdir(folder)} - {"broken"}
    assert (done["error"] == "").all() and (done["seconds"] > 0).all() and (done["windows"] >= 1).all()
    broken = status.loc["broken"]
    assert broken["status"] == "failed" and str(folder / "broken.flv") in broken["error"]
    timelines = pd.read_parquet(out / "timelines")  # one dataset, the file as its partition column
    assert set(timelines["file"].astype(str)) == set(done.index)
    counts = timelines.groupby(timelines["file"].astype(str)).size()
    assert (counts == done["windows"].reindex(counts.index)).all()
    probs = timelines[[c for c in timelines.columns if c.startswith("fused_")]].to_numpy(float)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    tl = store.load_timeline(out, "1001_DFA_HAP_XX")
    assert tl.attrs["source"].endswith("1001_DFA_HAP_XX.flv") and tl["face"].any() and tl["speech"].any()


def test_rerun_skips_finished_files_and_retries_the_failed_one(ray_run, folder):
    out, first = ray_run
    part = store.partition_dir(out, "1001_DFA_SAD_XX") / "part-0.parquet"
    before = part.stat().st_mtime_ns
    again = run_batch(collect_inputs([folder]), out, engine="ray", ray_settings=RaySettings(workers=2))
    assert sorted(again.skipped) == sorted(r["file"] for r in first.records if r["status"] == "done")
    assert [r["file"] for r in again.records] == ["broken"] and again.records[0]["status"] == "failed"
    assert part.stat().st_mtime_ns == before
    assert len(store.read_status(out)) == 7


def test_local_engine_gives_the_same_timelines(ray_run, clips, tmp_path):
    out_ray, _ = ray_run
    inputs = [clips["cremad_hap"], clips["ravdess_wav"]]
    result = run_batch(inputs, tmp_path, engine="local")
    assert [r["status"] for r in result.records] == ["done", "done"]
    for path in inputs:
        local, remote = store.load_timeline(tmp_path, path.stem), store.load_timeline(out_ray, path.stem)
        pd.testing.assert_frame_equal(pd.DataFrame(local), pd.DataFrame(remote))


def test_cli_reads_a_manifest_and_records_a_missing_file(clips, tmp_path):
    manifest = tmp_path / "list.csv"
    pd.DataFrame({"path": [str(clips["ravdess_wav"]), "nowhere/missing.wav"]}).to_csv(manifest, index=False)
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out")]) == 1  # one failed file: exit 1
    status = store.read_status(tmp_path / "out").set_index("file")
    assert status.loc["03-01-08-02-01-01-19", "status"] == "done"
    assert status.loc["missing", "status"] == "failed" and "file not found" in status.loc["missing", "error"]


def test_urls_in_a_manifest_are_downloaded_and_a_failed_download_fails_alone(clips, tmp_path, capsys, http_site):
    """A manifest listing a file, a URL on a real local server and a missing URL: the URL's file is downloaded
    into OUT/downloads and analysed; the missing one is reported, counted failed (exit 1), and the rest stand."""
    import shutil

    base, site, _ = http_site
    shutil.copy(clips["cremad_sad"], site / "sad.flv")
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"{clips['ravdess_wav']}\n{base}/sad.flv\n{base}/missing.flv  # not there\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 analysed, 0 already done, 1 failed (1 not downloaded)" in err and "HTTP 404" in err
    status = store.read_status(out).set_index("file")
    (download,) = (out / "downloads").glob("sad-*.flv")
    assert status.loc[download.stem, "status"] == "done" and status.loc["03-01-08-02-01-01-19", "status"] == "done"


def test_a_stretch_of_each_file_and_a_changed_stretch_is_analysed_again(clips, tmp_path, capsys):
    """``avemo batch --start 1 --end 0:03``: each file's timeline covers that stretch in the file's own times; the
    same command again skips it, another stretch analyses it again (the stretch is part of what is finished)."""
    out = tmp_path / "out"
    cmd = ["batch", str(clips["ravdess_mp4"]), "--out", str(out), "--start", "1", "--end", "0:03", "--window", "1"]
    assert main(cmd) == 0
    part = store.load_timeline(out, clips["ravdess_mp4"].stem)
    assert part["start"].iloc[0] == 1.0 and part["end"].iloc[-1] <= 3.0 + 1e-6 and len(part) == 2
    assert main(cmd) == 0 and "0 analysed, 1 already done" in capsys.readouterr().err
    assert main([*cmd[:4], "--window", "1"]) == 0 and "1 analysed, 0 already done" in capsys.readouterr().err
    whole = store.load_timeline(out, clips["ravdess_mp4"].stem)
    assert whole["start"].iloc[0] == 0.0 and whole["end"].iloc[-1] > 3.0


def test_text_runs_give_every_file_the_text_columns(clips, tmp_path, capsys):
    """``avemo batch --text``: the speech's words and their emotions, as ``avemo analyze --text``; a file without
    sound gets the same columns, empty, so the dataset has one schema; a bad --language fails before any file."""
    out = tmp_path / "out"
    assert main(["batch", str(clips["ravdess_wav"]), str(clips["ravdess_mp4"]), "--out", str(out), "--text"]) == 0
    spoken, silent = (store.load_timeline(out, p.stem) for p in (clips["ravdess_wav"], clips["ravdess_mp4"]))
    assert "door" in " ".join(spoken["transcript"]).lower() and spoken.attrs["transcript"]["language"] == "en"
    assert spoken["text_words"].gt(0).all() and spoken.probabilities("text").sum(1) == pytest.approx(1.0, abs=1e-4)
    assert list(silent.columns) == list(spoken.columns) and silent["text_words"].eq(0).all()
    assert np.isnan(silent.probabilities("text")).all() and "transcript" not in silent.attrs
    assert silent["source"].eq("face").all() and silent["weight_text"].eq(0).all()
    assert main(["batch", str(clips["ravdess_wav"]), "--out", str(tmp_path / "o2"), "--text", "--language", "xx"]) == 2
    assert "'xx'" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def test_a_file_its_workers_died_on_twice_is_recorded_not_retried(clips, tmp_path):
    settings = BatchSettings()
    path = clips["ravdess_wav"]
    store.attempt_path(tmp_path, path.stem).parent.mkdir(parents=True)
    store.attempt_path(tmp_path, path.stem).write_text("2")  # two workers died on it already
    result = run_batch([path], tmp_path, settings, engine="local")
    record = result.records[0]
    assert record["status"] == "failed" and "died 2 times" in record["error"]
    assert not store.partition_dir(tmp_path, path.stem).exists()
    assert not store.attempt_path(tmp_path, path.stem).exists()
    assert json.loads(store.marker_path(tmp_path, path.stem).read_text())["status"] == "failed"


def test_local_engine_refuses_ray_options(tmp_path):
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "2"]) == 2

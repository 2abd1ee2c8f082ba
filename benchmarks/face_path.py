"""What the analyzer's fast face path costs in accuracy: MediaPipe on every other sampled frame, the faces
carried to the frame after by optical flow, the decoder's deblocking filter skipped, and one view of the face
network per frame (mirrored on every other frame) instead of two, against the exact path (MediaPipe on every
frame, full decoding, both views), frame by frame on the same videos.

For each sampled frame both paths give a face crop; the shipped face model (the analyzer's settings)
classifies both. Reported per video: frames, faces found by each path, top-label agreement, mean
absolute difference of the probabilities, and for frames carried by flow the eye-centre error of the
carried landmarks against MediaPipe's own, as a share of the inter-ocular distance.
Writes benchmarks/results/speed/face_path.json.

    python benchmarks/face_path.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from avemo.bench.encodings import build_video
from avemo.bench.speed import build_test_video
from avemo.config import data_root
from avemo.faces import iter_scan_video
from avemo.inference.analyzer import AnalyzerConfig
from avemo.inference.predictors import DEFAULT_MODELS, FacePredictor
from avemo.provenance import git_commit, machine

VARIANTS = {
    # a control: a change of no intended consequence, to show how much the exact path itself moves
    "control: exact, MediaPipe input 384 px (not 320)": {"detect_side": 384},
    "every 2nd frame": {"landmark_every": 2},
    "every 3rd frame": {"landmark_every": 3},
    # the decoder's deblocking filter skipped (H.264 / HEVC with key frames at least every 10 s; the clips'
    # MPEG-4 and VP6 have no such filter, so they do not move)
    "deblocking skipped": {"skip_loop_filter": True},
    "every 2nd frame + deblocking skipped (the default until stop 30)": {"landmark_every": 2,
                                                                         "skip_loop_filter": True},
    # one view per frame, mirrored on every other sampled frame, instead of both views on every frame
    "views alternate": {"alternate": True},
    "every 2nd frame + deblocking skipped + views alternate (the default)": {"landmark_every": 2,
                                                                             "skip_loop_filter": True,
                                                                             "alternate": True},
}


def scan(path: Path, model: FacePredictor, cfg: AnalyzerConfig, **opts) -> dict[float, tuple]:
    """time -> (probabilities, eye centres, source) of the main face of each sampled frame (with ``alternate``,
    one view per frame, mirrored on every other sampled frame, as the analyzer's default)."""
    out = {}
    side = opts.pop("detect_side", cfg.detect_side)
    alternate = opts.pop("alternate", False)
    for ff in iter_scan_video(path, cfg.fps, size=model.crop_size, grey=True, max_side=side,
                              decode_max_side=cfg.decode_side, skip_nonref=cfg.skip_nonref, **opts):
        m = ff.main
        if m is None:
            out[round(ff.time, 3)] = None
            continue
        out[round(ff.time, 3)] = (ff.main_crop, m.eye_centres(), m.source)
    crops = [v[0] for v in out.values() if v is not None]
    mirror = np.array([k % 2 == 1 for k, v in enumerate(out.values()) if v is not None]) if alternate else None
    probs = iter(model.predict_faces(np.stack(crops), mirror=mirror)[0]) if crops else iter(())
    return {t: None if v is None else (next(probs), v[1], v[2]) for t, v in out.items()}


def window_labels(frames: dict, window: float, hop: float) -> list[int | None]:
    """Top face label of each analyzer window (mean probabilities of its frames), as the timeline has it."""
    times = np.array(sorted(frames))
    labels = []
    for s in np.arange(0.0, max(times[-1] - window, 0.0) + hop / 2, hop):
        ps = [frames[t][0] for t in times[(times >= s) & (times < s + window)] if frames[t] is not None]
        labels.append(int(np.mean(ps, axis=0).argmax()) if ps else None)
    return labels


def window_probs(frames: dict, window: float, hop: float) -> list[np.ndarray | None]:
    """Face probabilities of each analyzer window (the mean of its frames'), as the timeline has them."""
    times = np.array(sorted(frames))
    out = []
    for s in np.arange(0.0, max(times[-1] - window, 0.0) + hop / 2, hop):
        ps = [frames[t][0] for t in times[(times >= s) & (times < s + window)] if frames[t] is not None]
        out.append(np.mean(ps, axis=0) if ps else None)
    return out


def compare(exact: dict, fast: dict, cfg: AnalyzerConfig) -> dict:
    both = [t for t in exact if exact[t] is not None and fast.get(t) is not None]
    wdiff = [float(np.abs(a - b).mean()) for a, b in zip(window_probs(exact, cfg.window, cfg.hop),
                                                          window_probs(fast, cfg.window, cfg.hop))
             if a is not None and b is not None]
    we, wf = window_labels(exact, cfg.window, cfg.hop), window_labels(fast, cfg.window, cfg.hop)
    agree = [exact[t][0].argmax() == fast[t][0].argmax() for t in both]
    diff = [float(np.abs(exact[t][0] - fast[t][0]).mean()) for t in both]
    eye_err, eye_all = [], []
    for t in both:
        if exact[t][1] is None or fast[t][1] is None:
            continue
        (er, el), (fr, fl) = exact[t][1], fast[t][1]
        iod = float(np.linalg.norm(el - er)) or 1.0
        e = max(float(np.linalg.norm(fr - er)), float(np.linalg.norm(fl - el))) / iod
        eye_all.append(e)
        if fast[t][2] == "flow":
            eye_err.append(e)
    return {"frames": len(exact), "faces_exact": sum(v is not None for v in exact.values()),
            "faces_fast": sum(v is not None for v in fast.values()),
            "carried": sum(v is not None and v[2] == "flow" for v in fast.values()),
            "label_agreement": float(np.mean(agree)) if agree else float("nan"),
            "windows": len(we), "window_label_agreement": float(np.mean([a == b for a, b in zip(we, wf)])),
            "mean_abs_prob_diff": float(np.mean(diff)) if diff else float("nan"),
            "window_mean_abs_prob_diff": float(np.mean(wdiff)) if wdiff else float("nan"),
            "eye_error_iod_all_frames": float(np.mean(eye_all)) if eye_all else float("nan"),
            "eye_error_iod_mean": float(np.mean(eye_err)) if eye_err else float("nan"),
            "eye_error_iod_max": float(np.max(eye_err)) if eye_err else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/speed/face_path.json")
    args = parser.parse_args()
    clips = sorted((data_root() / "clips").glob("*/*.flv")) + sorted((data_root() / "clips").glob("*/*.mp4"))
    videos = {"speed benchmark video (60 s, 720p H.264)": build_test_video(60.0),
              "x264 default preset (60 s, 720p)": build_video("h264-default-720p", 60.0),
              "phone, portrait (60 s, 1080x1920 H.264)": build_video("phone-portrait-1080p", 60.0)}
    videos.update({f"{p.parent.name}/{p.name}": p for p in clips})
    cfg = AnalyzerConfig()
    model = FacePredictor(DEFAULT_MODELS["face"], tta="flip", int8=cfg.face_int8, threads=1)  # exact: both views
    rows: dict[str, dict] = {name: {} for name in VARIANTS}
    for vname, path in videos.items():
        exact = scan(path, model, cfg, landmark_every=1)
        for name, opts in VARIANTS.items():
            opts = dict(opts)
            rows[name][vname] = r = compare(exact, scan(path, model, cfg, **opts), cfg)
            print(f"{name:34s} {vname:45s} frames {r['frames']:4d} faces {r['faces_exact']}/{r['faces_fast']} "
                  f"agree {r['label_agreement']:.3f} windows {r['window_label_agreement']:.3f} "
                  f"|dp| {r['mean_abs_prob_diff']:.4f} windows |dp| {r['window_mean_abs_prob_diff']:.4f} "
                  f"eye err all {r['eye_error_iod_all_frames']:.3f} carried {r['eye_error_iod_mean']:.3f} "
                  f"(max {r['eye_error_iod_max']:.3f})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "variants": VARIANTS, "face_model": DEFAULT_MODELS["face"],
                               "commit": git_commit(), "machine": machine(),
                               "command": "python benchmarks/face_path.py"}, indent=2) + "\n")


if __name__ == "__main__":
    main()

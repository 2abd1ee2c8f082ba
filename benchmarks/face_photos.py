"""Face photos as a user gives them: FER-2013's test photos, one file each, through ``Analyzer.analyze`` (the
image path of ``avemo analyze``): as found, with a second try on a framed photo (``FaceScanner(reframe=...)``), and
with the whole photo read as a face as the last resort (``AnalyzerConfig.whole_photo_face``).

FER-2013's photos are tight 48x48 grey crops, as most face-expression photo sets are (crowd-labelled sets
crop and align their faces too): the detectors see a face with no context around it and miss some. A
photo without a face found gets no face answer, so here it counts as wrong. Rows: PublicTest (dev) and
PrivateTest (test), every photo; accuracy and UAR over the 7 classes with misses wrong, the share of photos
with a face (and with MediaPipe's landmarks, so the blendshape member), and accuracy on the photos with a face.

    python benchmarks/face_photos.py [--limit N] [--markdown BENCHMARKS.md]
    python benchmarks/face_photos.py --render [--markdown BENCHMARKS.md]   # the section from the stored JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from avemo.config import data_root
from avemo.faces import FaceScanner
from avemo.inference.analyzer import Analyzer
from avemo.labels import BASIC7
from avemo.markdown import replace_section
from avemo.provenance import git_commit, machine

OUT = Path(__file__).resolve().parent / "results" / "face_photos.json"
BEGIN, END = "<!-- face-photos:begin -->", "<!-- face-photos:end -->"
FOLDERS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
           "sad": "sad", "surprise": "surprised"}
SPLITS = {"PublicTest": "dev", "PrivateTest": "test"}


def photos(split: str, limit: int | None) -> list[tuple[Path, int]]:
    root = data_root() / "fer2013" / "test"
    items = sorted((p, BASIC7.index(FOLDERS[p.parent.name])) for p in root.glob(f"*/{split}_*.jpg"))
    if limit is not None and limit < len(items):  # evenly spaced: every class keeps its share
        items = [items[i] for i in np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))]
    return items


#: the rows: (framed retry, whole photo as the last resort)
STEPS = {"as found": (False, False), "framed retry": (True, False), "framed retry, then the whole photo": (True, True)}


def run(analyzer: Analyzer, items: list[tuple[Path, int]], reframe: bool, whole: bool) -> dict:
    analyzer._image_scanner = FaceScanner(mode="image", size=analyzer.face_model.crop_size, grey=True, track=False,
                                          max_side=analyzer.config.detect_side, reframe=reframe)
    analyzer.config = dataclasses.replace(analyzer.config, whole_photo_face=whole)
    y = np.array([k for _, k in items])
    pred = np.full(len(items), -1)
    landmarks = np.zeros(len(items), bool)
    cols = [f"face_{e}" for e in BASIC7]
    t0 = time.perf_counter()
    for i, (path, _) in enumerate(items):
        tl = analyzer.analyze(path)
        row = tl.iloc[0]
        if not np.isnan(row[cols].to_numpy(np.float64)).any():
            pred[i] = int(np.argmax(row[cols].to_numpy(np.float64)))
            landmarks[i] = bool(row.get("face_blendshapes", 0) > 0)
    seconds = time.perf_counter() - t0
    found = pred >= 0
    recall = {e: float(np.mean(pred[y == k] == k)) for k, e in enumerate(BASIC7) if np.any(y == k)}
    found_by_class = {e: float(np.mean(found[y == k])) for k, e in enumerate(BASIC7) if np.any(y == k)}
    return {"n": len(items), "found": float(found.mean()), "landmarks": float(landmarks.mean()),
            "accuracy": float(np.mean(pred == y)), "uar": float(np.mean(list(recall.values()))),
            "accuracy_found": float(np.mean(pred[found] == y[found])), "recall": recall,
            "found_by_class": found_by_class, "ms_per_photo": 1000 * seconds / len(items)}


def render(res: dict) -> str:
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [BEGIN, "## Face photos as a user gives them (FER-2013 test photos through `avemo analyze`)", "",
             f"Every FER-2013 test photo as a file through the analyzer's image path (`Analyzer.analyze`, the default "
             f"face model `{res['face_model']}`), the detectors as the product runs them; a photo where no face is "
             "found gets no face answer and counts as wrong. *Framed retry*: a photo where neither MediaPipe nor the "
             "Haar cascade finds a face is tried once more upscaled to 256 px with half its size of replicated "
             "border around (`avemo.faces.scan.framed`); *the whole photo*: a photo still without a face, 24 to "
             "256 px and within 1.5 : 1, not flat (grey levels' standard deviation >= 8), is read as a face crop "
             "itself (the crop network alone; `face_whole_photo` in the result). Both are the default since stop 29; "
             "the size and contrast guards came after this run and change one PublicTest photo (a blank one, now "
             "faceless) and no PrivateTest photo. PublicTest is the dev row "
             "(the whole-photo step was taken after seeing its missed photos read right 57.9 % of the time), "
             "PrivateTest the test row, never used for a choice; the framing is the face benchmark's rendering "
             "(`avemo.training.fer_faces`). Command: `" + res["command"] + f"`, commit `{res['commit']}`, "
             f"{res['date']}.", "",
             "| split | photos | detection | face found | with landmarks | accuracy | UAR "
             "| accuracy on found faces |",
             "|---|---|---|---|---|---|---|---|"]
    for split, rows in res["splits"].items():
        for key, r in rows.items():
            lines.append(f"| {split} ({SPLITS[split]}) | {r['n']} | {key} | {pct(r['found'])} % | "
                         f"{pct(r['landmarks'])} % | {pct(r['accuracy'])} | {pct(r['uar'])} | "
                         f"{pct(r['accuracy_found'])} |")
    t = res["splits"]["PrivateTest"]
    lines += ["", "Faces found per class, PrivateTest, as found / with the framed retry: " + ", ".join(
        f"{e} {pct(t['as found']['found_by_class'][e])} / {pct(t['framed retry']['found_by_class'][e])} %"
        for e in t["framed retry"]["found_by_class"]) + ".", "", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="an evenly spaced subset of N photos per split")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--render", action="store_true", help="only write the --markdown section from the stored JSON")
    args = ap.parse_args()
    if args.render:
        replace_section(args.markdown or Path("BENCHMARKS.md"), BEGIN, END, render(json.loads(OUT.read_text())))
        return
    analyzer = Analyzer("default")
    res = {"command": "python benchmarks/face_photos.py" + (f" --limit {args.limit}" if args.limit else ""),
           "commit": git_commit(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "face_model": analyzer.model_names["face"], "splits": {}}
    for split in SPLITS:
        items = photos(split, args.limit)
        res["splits"][split] = {key: run(analyzer, items, *steps) for key, steps in STEPS.items()}
        print(split, json.dumps({k: {m: round(v, 4) for m, v in r.items() if isinstance(v, float)}
                                 for k, r in res["splits"][split].items()}), flush=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    if args.markdown is not None:
        replace_section(args.markdown, BEGIN, END, render(res))


if __name__ == "__main__":
    main()

"""BENCHMARKS.md's accuracy section, rendered from the stored results (never typed by hand).

Every table names its data, protocol, the command that produced it, the commit and the machine.
Only the part between ``<!-- accuracy:begin -->`` and ``<!-- accuracy:end -->`` is rewritten, so
other sections of the file (speed) are left as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"
#: Results shown first, in this order; any other stored result follows alphabetically.
ORDER = ("voice_ravdess", "voice_ravdess_seed1", "baseline_egemaps_ravdess", "baseline_librosa_ravdess",
         "fusion_ravdess")


def _pm(s: dict[str, Any], key: str) -> str:
    return f"{100 * s[key]['mean']:.1f} ± {100 * s[key]['std']:.1f}"


def _protocol(res: dict[str, Any]) -> str:
    p = res["protocol"]
    if p["name"] == "ravdess6":
        return (f"{len(res['folds'])} actor-independent folds of 4 actors (1-4, 5-8, ...), every actor tested once; "
                f"choices made on training actors only ({p.get('val_speakers', 4)} inner-validation actors "
                "or grouped inner CV)")
    return f"hold-out of speakers {p.get('test_speakers')}"


def _machine(m: dict[str, Any]) -> str:
    return f"{m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m.get('torch_threads', '?')} thread)"


def _train_time(row: dict[str, Any]) -> str:
    secs = [f.get("train_seconds") for f in row["folds"] if f.get("train_seconds") is not None]
    return f"{sum(secs) / 60:.1f} min in all ({sum(secs) / 60 / len(secs):.1f} per fold)" if secs else "n/a"


def _choices(row: str, fold: dict[str, Any]) -> str:
    """What was chosen in a fold, on training actors only (model, parameters, temperatures, weights)."""
    def model(c: dict[str, Any]) -> str:
        params = ", ".join(f"{k}={v}" for k, v in c.get("params", {}).items())
        extra = f" on {c['features']}" if c.get("features") else ""
        return f"{c['name']}({params}){extra}, inner acc {100 * c['inner_acc']:.1f}"

    parts = []
    if "chosen" in fold:
        parts.append(model(fold["chosen"]))
    if row == "au_only" and "au_model" in fold:
        parts.append(model(fold["au_model"]))
    if row == "late_fusion" and "weights" in fold:
        t, w = fold["temperatures"], fold["weights"]
        parts.append(f"T voice {t['voice']:.2f}, T AU {t['face']:.2f}; w voice {w['voice']:.1f}, w AU {w['face']:.1f}")
    if row == "learned_fusion" and "stacker" in fold:
        parts.append(model(fold["stacker"]))
    if "member_val_acc" in fold:
        parts.append("inner-val acc of members " + ", ".join(f"{100 * a:.1f}" for a in fold["member_val_acc"])
                     + f", ensemble {100 * fold['ensemble_val_acc']:.1f}")
    return "; ".join(parts) or "–"


def render_holdout(res: dict[str, Any], name: str) -> list[str]:
    """A hold-out result (FER-2013: selected on PublicTest, reported on PrivateTest) and its clip predictions."""
    lines = [f"### `{name}`: the face model `{res['bundle']}` on FER-2013", "",
             f"- protocol: {res['protocol']}", f"- command: `{res['command']}`",
             f"- commit: `{res['commit']}`, {res.get('date', '')}", f"- machine: {res['machine']}", "",
             "| split | role | n | accuracy | macro-F1 | UAR |", "| --- | --- | --- | --- | --- | --- |"]
    roles = {"public_test": "selection (epoch, views)", "private_test": "**reported**"}
    for split, r in res["fer2013"].items():
        lines.append(f"| {split} | {roles.get(split, '')} | {r['n']} | {100 * r['accuracy']:.1f} | "
                     f"{100 * r['macro_f1']:.1f} | {100 * r['uar']:.1f} |")
    private = res["fer2013"].get("private_test")
    if private:
        lines += ["", "PrivateTest recall per class: " + ", ".join(
            f"{lab} {100 * v:.0f}" for lab, v in private["per_class_recall"].items()), ""]
    if res.get("clips"):
        lines += ["On the shared real clips (aligned crops from the face front end; clip-mean prediction):", "",
                  "| clip | truth | frames with a face | predicted |", "| --- | --- | --- | --- |"]
        for clip in res["clips"].values():
            lines.append(f"| `{clip['path']}` | {clip['truth']} | {clip['faces_found']}/{clip['frames']} | "
                         f"{clip['predicted']}{'' if clip['correct'] else ' (wrong)'} |")
    return lines + [""]


def render(results: list[dict[str, Any]], results_dir: Path) -> str:
    lines = [BEGIN, "## Accuracy", "",
             "Regenerate with `make benchmarks` (`avemo bench accuracy`) from `benchmarks/results/*.json`; "
             "each result is produced by the command named under it. Scores in %, mean ± std over folds.", ""]
    lines += ["| data | model | accuracy | macro-F1 | UAR | accuracy per fold |",
              "| --- | --- | --- | --- | --- | --- |"]
    for res in results:
        for name, row in res["rows"].items():
            s = row["summary"]
            per = " / ".join(f"{100 * a:.1f}" for a in s["accuracy"]["per_fold"])
            lines.append(f"| {res['corpus']} ({res['n_samples']} clips, {res['n_speakers']} actors) | `{name}` | "
                         f"{_pm(s, 'accuracy')} | {_pm(s, 'macro_f1')} | {_pm(s, 'uar')} | {per} |")
    lines.append("")
    for res in results:
        lines += [f"### `{res['recipe']}`", "", res.get("description") or "", "",
                  f"- data: {res['corpus']}, {res['n_samples']} clips, {res['n_speakers']} actors",
                  f"- protocol: {_protocol(res)}",
                  f"- command: `{res['command']}`",
                  f"- commit: `{res['commit']}` (trained), `{res.get('evaluated_commit', '?')}` (evaluated)",
                  f"- machine: {_machine(res['machine'])}", ""]
        for name, row in res["rows"].items():
            s = row["summary"]
            labels = s["labels"]
            recall = {lab: [] for lab in labels}
            for f in row["folds"]:
                for lab, r in f["per_class_recall"].items():
                    recall[lab].append(r)
            about = (row.get("about") or {}).get("description", "")
            lines += [f"**`{name}`**" + (f": {about}" if about else "") + f" — training time {_train_time(row)}", "",
                      "| fold | test actors | n | accuracy | macro-F1 | UAR | chosen on training actors |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for k, f in enumerate(row["folds"]):
                actors = ", ".join(a.split(":")[-1] for a in f.get("test_speakers", []))
                lines.append(f"| {k} | {actors} | {f['n']} | {100 * f['accuracy']:.1f} | {100 * f['macro_f1']:.1f} | "
                             f"{100 * f['uar']:.1f} | {_choices(name, f)} |")
            lines += ["", "Per-class recall (mean over folds): " + ", ".join(
                f"{lab} {100 * sum(v) / len(v):.0f}" for lab, v in recall.items() if v), ""]
            png = results_dir / f"{name}_confusion.png"
            if png.is_file():
                lines += [f"![pooled confusion of {name}]({png.as_posix()})", ""]
            lines += ["<details><summary>pooled confusion matrix (rows: true, columns: predicted)</summary>", "",
                      "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
            lines += [f"| {lab} | " + " | ".join(str(v) for v in r) + " |" for lab, r in zip(labels, s["confusion"],
                                                                                          strict=True)]
            lines += ["", "</details>", ""]
    for path in sorted(results_dir.glob("*.json")):
        res = json.loads(path.read_text())
        if isinstance(res, dict) and "fer2013" in res and "rows" not in res:
            lines += render_holdout(res, path.stem)
    lines.append(END)
    return "\n".join(lines)


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))}
    found = {k: v for k, v in found.items() if isinstance(v, dict) and "rows" in v}  # avemo evaluate's results only
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return [found[n] for n in names]


def write_accuracy_section(results_dir: Path, out: Path) -> Path:
    """(Re)write the accuracy section of ``out`` from ``results_dir``."""
    from avemo.markdown import replace_section

    return replace_section(out, BEGIN, END, render(load_results(results_dir), results_dir))

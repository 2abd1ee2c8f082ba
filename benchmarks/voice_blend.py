"""The shipped voice head as a blend: the linear head on Whisper base layers 2-4 beside attentive-statistics
heads on layers 3 and 4, their log-softmax outputs averaged (``benchmarks/voice_nested_ensemble.py`` measures the
choice nested).

    python benchmarks/voice_blend.py tables            # the blend's held-out tables from its members' stored ones
    python benchmarks/voice_blend.py train --folder runs/voice_blend3 --linear-from 50c84f9   # members, temperature
    python benchmarks/voice_blend.py bundle --folder runs/voice_blend3  # -> src/avemo/weights/voice.multi6
    python benchmarks/voice_calm_prior.py run && python benchmarks/voice_calm_prior.py ship   # its calm bias
    python benchmarks/voice_blend.py channels   # noise / telephone rows, after voice_crossdomain.py channels

``tables`` writes ``loco_probs_<BLEND>.csv.gz`` (six corpora left out in turn) and ``..._ravdess_folds.csv.gz``
(RAVDESS's 6 actor folds, the other corpora on the training side) beside the members' (temperature 1, like
theirs) and prints their scores; the fusion and calm-bias scripts read these as the shipped recipe's. ``train``
fits the temperature on the blend's leave-one-corpus-out predictions (what ``voice_crossdomain.py final`` does for
one head).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from avemo.labels import EMOTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "benchmarks" / "results" / "voice_multi"
BUNDLE = ROOT / "src" / "avemo" / "weights" / "voice.multi6"
#: the members (recipes of ``benchmarks/voice_crossdomain.py``) and their names inside the head's arrays
MEMBERS = {"linear_L2-4_aug": "linear", "attn_L3": "attn_L3", "attn_L4": "attn_L4"}
BLEND = "+".join(MEMBERS)


def member_table(recipe: str, suffix: str = "") -> pd.DataFrame:
    return pd.read_csv(VOICE / f"loco_probs_{recipe}{suffix}.csv.gz")


def blend_rows(tables: list[pd.DataFrame], key: list[str]) -> pd.DataFrame:
    """Held-out tables of the members (same rows, matched on ``key``) blended as the shipped head blends: softmax of
    the mean of their log-probabilities, rows in the first table's order."""
    first = tables[0]
    rows = pd.MultiIndex.from_frame(first[key]) if len(key) > 1 else first[key[0]]
    logp = np.mean([np.log(np.clip(t.set_index(key).loc[rows, list(EMOTIONS)].to_numpy(np.float64), 1e-12, None))
                    for t in tables], axis=0)
    p = np.exp(logp - logp.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return first.assign(**{e: np.round(p[:, j], 5) for j, e in enumerate(EMOTIONS)})


def blend_table(suffix: str = "") -> pd.DataFrame:
    """The blend's rows of one stored table (``loco_probs_<member><suffix>.csv.gz``)."""
    return blend_rows([member_table(r, suffix) for r in MEMBERS], ["path"])


def own_mask(df: pd.DataFrame) -> np.ndarray:
    sets = {c: set(g.label) for c, g in df.groupby("corpus")}
    return np.stack([[e in sets[c] for e in EMOTIONS] for c in df.corpus])


def loco_scores(df: pd.DataFrame) -> dict:
    """UAR and accuracy over each held-out corpus's own classes; pooled ECE of the top class (temperature 1)."""
    from voice_crossdomain import ece

    p = np.where(own_mask(df), df[list(EMOTIONS)].to_numpy(), 0.0)
    p /= p.sum(1, keepdims=True)
    y, pred = df.label.map(EMOTIONS.index).to_numpy(), p.argmax(1)
    per = {c: {"uar": float(np.mean([np.mean(pred[(df.corpus == c).to_numpy() & (y == k)] == k)
                                     for k in np.unique(y[(df.corpus == c).to_numpy()])])),
               "accuracy": float(np.mean(pred[(df.corpus == c).to_numpy()] == y[(df.corpus == c).to_numpy()]))}
           for c in df.corpus.unique()}
    return {"corpora": per, "mean_uar": float(np.mean([v["uar"] for v in per.values()])),
            "ece": float(ece(p.max(1), pred == y))}


def top_shares(df: pd.DataFrame, calm_bias: float) -> dict:
    """Per held-out corpus, the class answered most often and its share of the corpus's clips: over the corpus's
    own classes (as the protocol scores) and over all 8 with ``calm_bias`` on calm's log-probability (as the
    shipped bundle answers); with the largest true class's share beside them."""
    p = df[list(EMOTIONS)].to_numpy(np.float64)
    own = np.where(own_mask(df), p, -1.0).argmax(1)
    logp = np.log(np.clip(p, 1e-12, None))
    logp[:, EMOTIONS.index("calm")] += calm_bias
    every = logp.argmax(1)
    out = {}
    for c in df.corpus.unique():
        m = (df.corpus == c).to_numpy()
        o, e = np.bincount(own[m], minlength=len(EMOTIONS)), np.bincount(every[m], minlength=len(EMOTIONS))
        out[c] = {"classes": int(df.label[m].nunique()), "own": (EMOTIONS[o.argmax()], float(o.max() / m.sum())),
                  "eight": (EMOTIONS[e.argmax()], float(e.max() / m.sum())),
                  "true": float(df.label[m].value_counts(normalize=True).max())}
    return out


def fold_scores(df: pd.DataFrame) -> dict:
    """8-way accuracy per RAVDESS actor fold (6 folds of 4 actors, as ``voice_crossdomain.py``)."""
    speakers = sorted(df.speaker.unique(), key=lambda s: int(str(s).rsplit(":", 1)[-1]))
    fold = df.speaker.map({s: i // 4 for i, s in enumerate(speakers)}).to_numpy()
    y, pred = df.label.map(EMOTIONS.index).to_numpy(), df[list(EMOTIONS)].to_numpy().argmax(1)
    acc = [float(np.mean(pred[fold == k] == y[fold == k])) for k in range(6)]
    return {"folds": acc, "mean": float(np.mean(acc)), "std": float(np.std(acc))}


def tables() -> dict:
    out = {}
    for suffix in ("", "_ravdess_folds"):
        df = blend_table(suffix)
        df.to_csv(VOICE / f"loco_probs_{BLEND}{suffix}.csv.gz", index=False)
    for name in (*MEMBERS, BLEND):
        out[name] = {"loco": loco_scores(member_table(name)),
                     "ravdess": fold_scores(member_table(name, "_ravdess_folds"))}
        lo, rv = out[name]["loco"], out[name]["ravdess"]
        print(f"{name}: LOCO mean UAR {100 * lo['mean_uar']:.1f} ("
              + ", ".join(f"{c} {100 * v['uar']:.1f}" for c, v in lo["corpora"].items())
              + f"), ECE {lo['ece']:.3f}; RAVDESS folds {100 * rv['mean']:.1f} ± {100 * rv['std']:.1f}")
    (VOICE / "blend.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def channels() -> dict:
    """The blend on RAVDESS's actor folds with the test audio clean, under white noise at SNR 10 dB and through
    the telephone band, from its members' tables of one ``voice_crossdomain.py channels`` run each (one model a
    fold for the three conditions) -> ``channels_<BLEND>.json``, which *Voice across corpora* renders."""
    from voice_crossdomain import machine

    out: dict = {"recipe": BLEND, "members": list(MEMBERS), "conditions": {}, "machine": machine()}
    for cond in ("clean", "noise10", "telephone"):
        df = blend_table(f"_ravdess_folds_{cond}")
        sc = fold_scores(df)
        out["conditions"][cond] = {"folds": [{"fold": f"fold {k}", "accuracy": a} for k, a in enumerate(sc["folds"])],
                                   "mean_accuracy": sc["mean"], "std_accuracy": sc["std"]}
        print(f"{BLEND} {cond}: {100 * sc['mean']:.1f} ± {100 * sc['std']:.1f}")
    (VOICE / f"channels_{BLEND}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def shipped_linear(rev: str) -> dict[str, np.ndarray]:
    """The linear head ``voice.multi6`` shipped at git revision ``rev``, its calm bias taken off."""
    import subprocess

    from safetensors.numpy import load

    def show(name: str) -> bytes:
        return subprocess.run(["git", "show", f"{rev}:src/avemo/weights/voice.multi6/{name}"], cwd=ROOT,
                              capture_output=True, check=True).stdout

    head = json.loads(show("bundle.json"))["preprocessing"]["head"]
    arrays = {k: v.copy() for k, v in load(show("head.safetensors")).items()}
    arrays["bias"][EMOTIONS.index("calm")] -= np.float32(head.get("class_bias", {}).get("calm", 0.0))
    return arrays


def train(folder: Path, linear_from: str | None = None) -> None:
    """Every member trained on all 4,369 clips (the linear one taken from git revision ``linear_from`` instead, when
    given); the temperature fitted on the blend's LOCO predictions."""
    import torch
    from voice_crossdomain import Data, final_arrays, machine, recipes

    from avemo.audio.whisper_voice import save_head
    from avemo.datasets.speech import SPEECH_CORPORA
    from avemo.training import speech_heads as H

    torch.set_num_threads(1)
    loco = member_table(BLEND)
    logp = np.log(np.clip(loco[list(EMOTIONS)].to_numpy(np.float64), 1e-12, None))
    temperature = H.fit_temperature(logp, loco.label.map(EMOTIONS.index).to_numpy(), own_mask(loco))
    data = Data()
    arrays: dict[str, np.ndarray] = {"bias": np.zeros(len(EMOTIONS), np.float32)}
    members = []
    for recipe, name in MEMBERS.items():
        r = recipes()[recipe]
        a, extra = (shipped_linear(linear_from), {}) if linear_from and r.head == "linear" else final_arrays(r, data)
        arrays.update({f"{name}.{k}": v for k, v in a.items()})
        members.append({"name": name, "kind": r.head, "recipe": r.describe(),
                        "layers": [int(k) for k in (r.layers if r.layers is not None else (r.layer,))], **extra})
        print(f"trained {recipe}", flush=True)
    settings = {"labels": list(EMOTIONS), "head": "blend", "members": members, "temperature": temperature,
                "layers": sorted({k for m in members for k in m["layers"]}),
                "trained_on": {"corpora": {c: int(np.sum(data.corpus == c)) for c in SPEECH_CORPORA},
                               "label_sets": {k: list(v) for k, v in data.sets.items()},
                               "clips": len(data.samples)},
                "machine": machine()}
    save_head(folder, arrays, settings)
    print(f"saved {folder}: temperature {temperature:.3f}")


def bundle(folder: Path) -> None:
    """The trained blend into ``voice.multi6`` (front end unchanged; its calm bias comes after, by
    ``voice_calm_prior.py ship``)."""
    st = json.loads((folder / "settings.json").read_text())
    spec_path = BUNDLE / "bundle.json"
    spec = json.loads(spec_path.read_text())
    shutil.copy(folder / "head.safetensors", BUNDLE / "head.safetensors")
    pre = spec["preprocessing"]
    pre["front_end"]["layers"] = st["layers"]
    pre["head"] = {"kind": "blend", "temperature": st["temperature"],
                   "members": [{k: m[k] for k in ("name", "kind", "layers", "heads") if k in m} for m in st["members"]],
                   "pooling": "the mean of the members' log-softmax outputs: `linear` on the mean and std over the "
                              "window's frames of each layer, `attn_L4` by attentive statistics over its frames"}
    spec["files"]["weights"]["sha256"] = hashlib.sha256((BUNDLE / "head.safetensors").read_bytes()).hexdigest()
    spec["meta"]["recipe"] = {"name": BLEND, "members": [m["recipe"] for m in st["members"]]}
    spec["meta"]["trained_on"] = st["trained_on"]
    spec["meta"]["machine"] = st["machine"]
    spec["meta"]["command"] = (f"python benchmarks/voice_blend.py tables && python benchmarks/voice_blend.py train "
                               f"--folder {folder} --linear-from 50c84f9 && "
                               f"python benchmarks/voice_blend.py bundle --folder {folder} && "
                               "python benchmarks/voice_calm_prior.py run && "
                               "python benchmarks/voice_calm_prior.py ship")
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    print(f"{BUNDLE.name}: blend {BLEND}, temperature {st['temperature']:.3f}")


def card() -> Path:
    """``voice.multi6``'s MODEL_CARD.md from the stored results: the blend, its members, the nested choice, the
    calm bias; the sections on the encoder, the data, the licence and the limits kept from the card as it is."""
    from voice_crossdomain import _pct as pct

    from avemo.datasets.speech import LANGUAGES
    from avemo.models.bundles import load

    b = load("voice.multi6")
    head, meta = b.preprocessing.head, b.meta
    res = json.loads((VOICE / "blend.json").read_text())
    loco = blend_table()
    shares = top_shares(loco, head["class_bias"]["calm"])
    base = {f["fold"]: f for f in json.loads((VOICE / "baseline.json").read_text())["loco"]["folds"]}
    old = (BUNDLE / "MODEL_CARD.md").read_text()
    keep = old[old.index("## Encoder\n"):old.index("## Training data")]
    lines = ["# voice.multi6: voice emotion from Whisper base encoder layers and a blend of three small heads", "",
             "Three heads on Whisper base encoder layers 2-4, their log-softmax outputs averaged: `linear` (mean and "
             "std over the window's frames of layers 2, 3 and 4, standardised, one linear layer; recipe "
             "`linear_L2-4_aug`, the head this bundle shipped alone until stop 24), `attn_L3` and `attn_L4` (layer "
             "3's or layer 4's frames standardised, a GELU frame MLP of 128, 4-head attentive statistics pooling, "
             "one linear layer; recipes `attn_L3`, `attn_L4`; stop 25 shipped the linear head and `attn_L4`). "
             f"Softmax with temperature {head['temperature']:.3f} (fitted on the blend's "
             "leave-one-corpus-out predictions, training corpora only) over the 8 canonical classes "
             f"{', '.join(b.labels)}; calm's log-probability carries a bias of {head['class_bias']['calm']:+.3f} "
             "(below).", "", keep.rstrip(), "", "## Training data", "",
             "| corpus | language | clips | classes |", "|---|---|---|---|"]
    for c, n in meta["trained_on"]["corpora"].items():
        lines.append(f"| {c} | {LANGUAGES[c]} | {n} | {', '.join(meta['trained_on']['label_sets'][c])} |")
    lines += ["", "A corpus contributes only its own classes (each head's loss takes the softmax over the corpus's "
              "label set); examples are weighted so that every corpus and every class within it weighs the same. "
              "The linear head also saw one random channel/room copy (reverberation, band limit, MP3/Opus, "
              "white/pink noise, gain) of 2,603 of the 4,369 clips; the attentive heads saw the clean clips only.", "",
              "## Measured (none of these on a corpus or speaker the model saw)", "",
              "Leave one corpus out (train on five, test on the sixth over its own classes), UAR (%):", "",
              "| corpus | blend (shipped) | " + " | ".join(f"`{n}` alone" for n in MEMBERS.values())
              + " | `voice.ravdess8` |",
              "|---" * (len(MEMBERS) + 3) + "|"]
    for c in res[BLEND]["loco"]["corpora"]:
        bu = "– (trained on it)" if c == "ravdess" else pct(base[c]["uar"]) if c in base else "–"
        lines.append(f"| {c} | **{pct(res[BLEND]['loco']['corpora'][c]['uar'])}** | "
                     + " | ".join(pct(res[n]["loco"]["corpora"][c]["uar"]) for n in MEMBERS) + f" | {bu} |")
    lines.append("| **mean** | **" + pct(res[BLEND]["loco"]["mean_uar"]) + "** | "
                 + " | ".join(pct(res[n]["loco"]["mean_uar"]) for n in MEMBERS) + " | |")
    lines += ["", f"Calibration of these predictions at temperature 1 (pooled, top class): ECE "
              f"{res[BLEND]['loco']['ece']:.3f} for the blend, " + ", ".join(
                  f"{res[n]['loco']['ece']:.3f} for `{n}`" for n in MEMBERS) + ". RAVDESS, 6 actor-independent "
              "folds, 8 classes, the other corpora on the training side, accuracy (%): blend "
              f"{pct(res[BLEND]['ravdess']['mean'])} ± {pct(res[BLEND]['ravdess']['std'])} (per fold "
              + " / ".join(pct(a) for a in res[BLEND]["ravdess"]["folds"]) + "), " + ", ".join(
                  f"`{n}` {pct(res[n]['ravdess']['mean'])}" for n in MEMBERS) + " (before the calm bias).", ""]
    many = [c for c, t in shares.items() if t["classes"] >= 3]
    worst = max(many, key=lambda c: shares[c]["own"][1])
    lines += ["The class answered most often on each held-out corpus, as a share of its clips (over its own classes "
              "/ over all 8 with the calm bias; the largest true class in brackets): " + "; ".join(
                  f"{c} {t['own'][0]} {pct(t['own'][1])} / {t['eight'][0]} {pct(t['eight'][1])} [{pct(t['true'])}]"
                  for c, t in shares.items()) + f". The largest share on a corpus of three or more classes: {worst}, "
              f"{pct(shares[worst]['own'][1])} % (the maintainers' bar for the corpora kept back: no class on more "
              "than half a corpus).", ""]
    nested = VOICE / "nested_ensemble" / "results.json"
    if nested.is_file():
        ne = json.loads(nested.read_text())
        cell = {(r["blend"], r["outer"]): r for r in ne["rows"].values()}
        corpora = sorted({r["outer"] for r in ne["rows"].values()})
        picks = {c: max(ne["blends"], key=lambda n: cell[(n, c)]["inner_mean"]) for c in corpora}
        nu = np.mean([cell[(picks[c], c)]["uar"] for c in corpora])
        lu = np.mean([cell[("linear", c)]["uar"] for c in corpora])
        lines += ["How the blend was chosen: among the linear head alone and its blends with `attn_L3`, `attn_L4` or "
                  "both, by a nested check (each held-out corpus scored with the candidate that leave-one-corpus-out "
                  "over the other five picks; `python benchmarks/voice_nested_ensemble.py run`): mean UAR "
                  f"{pct(nu)} % against {pct(lu)} % for the linear head alone in the same run "
                  "(picked per corpus: " + "; ".join(f"{c} `{picks[c]}`" for c in corpora) + "). Stop 25 had "
                  "shipped the two-member blend with `attn_L4`, chosen from the outer rows alone before the nested "
                  "run; this bundle follows the nested pick.", ""]
    calm = VOICE / "calm_prior.json"
    if calm.is_file():
        cp = json.loads(calm.read_text())
        mb = np.mean([r["before"]["uar8"] for r in cp["loco"].values()])
        ma = np.mean([r["after"]["uar8"] for r in cp["loco"].values()])
        lines += ["## Calm bias (added after training)", "",
                  "Only RAVDESS teaches *calm*, and the loss is taken over each corpus's own classes, so on other "
                  "speech a head answers calm freely (the linear head alone: 28 % of EMOVO's clips, 13 % of "
                  "SAVEE's, all wrong; the two-member blend of stop 25 13 % and 7 %; "
                  "this one 6 % and 6 %). Calm's log-probability carries a bias of "
                  f"{head['class_bias']['calm']:+.3f} (before the temperature), fitted by the 8-way likelihood of "
                  "every stored held-out prediction (six corpora left out in turn, RAVDESS's actor folds; each "
                  "corpus and class weighing the same): `python benchmarks/voice_calm_prior.py run`, then `ship`. "
                  "The figures above are from before it; nested (the bias fitted without the corpus it is scored "
                  f"on), over all eight classes, the mean leave-one-corpus-out UAR goes from {pct(mb)} to {pct(ma)} "
                  "% (" + ", ".join(f"{c} {pct(r['before']['uar8'])} -> {pct(r['after']['uar8'])}"
                                    for c, r in cp["loco"].items()) + "), and RAVDESS's in-corpus 8-way accuracy "
                  f"from {pct(cp['ravdess_folds_mean']['before'])} to {pct(cp['ravdess_folds_mean']['after'])} % "
                  "(each fold's bias fitted on the same blocks as the shipped one, without the fold's actors). "
                  "BENCHMARKS.md, *Calm where nobody says calm*.", ""]
    chan = VOICE / f"channels_{BLEND}.json"
    if chan.is_file():
        cond = json.loads(chan.read_text())["conditions"]
        clean = cond["clean"]["mean_accuracy"]
        noise = ("What noise and the telephone band cost (RAVDESS folds as above, one model a fold, the test audio "
                 "changed; `python benchmarks/voice_crossdomain.py channels --recipe <member>` for each member, "
                 "then `python benchmarks/voice_blend.py channels`; the linear member retrained there with every "
                 f"clip's augmented copy, as the cache now holds): clean {pct(clean)} %, white noise at 10 dB "
                 f"SNR {pct(cond['noise10']['mean_accuracy'])} % "
                 f"({100 * (cond['noise10']['mean_accuracy'] - clean):+.1f} points), the telephone band "
                 f"{pct(cond['telephone']['mean_accuracy'])} % "
                 f"({100 * (cond['telephone']['mean_accuracy'] - clean):+.1f}).")
    else:
        noise = ("What noise and the telephone band cost was measured for the linear head alone (RAVDESS folds: white "
                 "noise at 10 dB SNR -7.6 points, the telephone band -3.7), not for the blend.")
    tail = old[old.index("## Encoder precision"):].replace(
        "Held out, with this head trained on float frames:", "Held out, with the linear head alone (this bundle's "
        "head until the blend) trained on float frames:")
    tail = re.sub(r"What noise and the telephone band cost[^\n]*", lambda _: noise, tail)  # to the paragraph's end
    lines += [tail.rstrip(), ""]
    (BUNDLE / "MODEL_CARD.md").write_text("\n".join(lines))
    return BUNDLE / "MODEL_CARD.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("tables", "train", "bundle", "card", "channels"))
    ap.add_argument("--folder", type=Path, default=Path("runs/voice_blend"))
    ap.add_argument("--linear-from", help="train: take the linear member from voice.multi6 at this git revision "
                    "(50c84f9: the head whose stored held-out tables the blend's are made of)")
    args = ap.parse_args()
    if args.command == "tables":
        tables()
    elif args.command == "train":
        train(args.folder, args.linear_from)
    elif args.command == "channels":
        channels()
    elif args.command == "card":
        print("wrote", card())
    else:
        bundle(args.folder)


if __name__ == "__main__":
    main()

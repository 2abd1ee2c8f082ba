"""Does fine-tuning a Whisper block pay off on corpora left out? (issue #10, point 2: "a light adapter if it pays")

The shipped voice members read frozen Whisper-base layers. Here the block that makes layer 4 is trained with the
attentive-statistics head of ``attn_L4``, from each clip's cached layer-3 frames, and scored leave-one-corpus-out
against the same head on the frozen block, fold by fold, in one run:

1. ``frozen``: ``attn_L4``'s recipe (hidden 128, 12 epochs, crops 1.5-3 s, lr 1e-3) on the cached layer-4 frames;
2. ``tuned``: from that head, block and head trained together for ``--epochs`` more epochs (block lr ``--block-lr``,
   head lr ``--head-lr``, cosine decay, AdamW, the same corpus-masked balanced loss, the same crops), the
   block initialised from the verified Whisper weights; its standardisation stays the frozen layer's.

UAR over each held-out corpus's own classes (as ``voice_crossdomain.py``). Frames: the feature cache filled by
``benchmarks/voice_features.py --condition clean`` (clean audio only: no augmented copies here).

    python benchmarks/voice_finetune.py [--folds ravdess savee ...] [--epochs 3]
    python benchmarks/voice_finetune.py --render   # the BENCHMARKS.md section from the stored runs
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from voice_crossdomain import Data, restrict, scores

from avemo.audio.whisper import model_dir, read_ct2_weights
from avemo.datasets.speech import loco_folds
from avemo.provenance import git_commit, machine
from avemo.training import speech_heads as H

OUT = Path(__file__).resolve().parent / "results" / "voice_multi" / "finetune_block4.json"
BEGIN, END = "<!-- voice-finetune:begin -->", "<!-- voice-finetune:end -->"
CFG = H.HeadConfig(kind="attn", hidden=128, epochs=12, crop_s=(1.5, 3.0))  # attn_L4's recipe


class WhisperBlock(nn.Module):
    """One pre-norm Whisper encoder block (8 heads, 512 wide), with a padding mask; loads CTranslate2's weights."""

    def __init__(self, weights: dict[str, np.ndarray], prefix: str, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(512), nn.LayerNorm(512)
        self.qkv, self.out = nn.Linear(512, 1536), nn.Linear(512, 512)
        self.fc1, self.fc2 = nn.Linear(512, 2048), nn.Linear(2048, 512)
        names = {"ln1": "self_attention/layer_norm", "ln2": "ffn/layer_norm", "qkv": "self_attention/linear_0",
                 "out": "self_attention/linear_1", "fc1": "ffn/linear_0", "fc2": "ffn/linear_1"}
        with torch.no_grad():
            for attr, name in names.items():
                mod = getattr(self, attr)
                keys = ("gamma", "beta") if attr.startswith("ln") else ("weight", "bias")
                for param, key in zip((mod.weight, mod.bias), keys):
                    param.copy_(torch.from_numpy(weights[f"{prefix}{name}/{key}"].astype(np.float32)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = x + self.out(ctx.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Tuned(nn.Module):
    def __init__(self, block: WhisperBlock, head: H.AttnStatsHead, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.block, self.head = block, head
        self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("std", torch.from_numpy(std.astype(np.float32)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head((self.block(x, mask) - self.mean) / self.std, mask)


def finetune(model: Tuned, frames: list[np.ndarray], y: np.ndarray, corpus: np.ndarray, sets: dict,
             epochs: int, block_lr: float, head_lr: float, batch: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    mask_rows = torch.from_numpy(H._mask_rows(list(corpus), sets))
    weights = torch.from_numpy(H.balanced_weights(list(corpus), y))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.AdamW([{"params": model.block.parameters(), "lr": block_lr, "weight_decay": 1e-2},
                             {"params": model.head.parameters(), "lr": head_lr, "weight_decay": CFG.weight_decay}])
    steps = epochs * (len(y) // batch)
    base = [g["lr"] for g in opt.param_groups]
    lo, hi = (int(s * 50) for s in CFG.crop_s)
    model.train()
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for s in range(len(y) // batch):
            idx = order[s * batch:(s + 1) * batch]
            x, m = H._batch([H._crop(frames[i], rng, lo, hi).astype(np.float32) for i in idx])
            for g, b0 in zip(opt.param_groups, base):
                g["lr"] = b0 * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = H.masked_cross_entropy(model(x, m), yt[idx], mask_rows[idx], weights[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    model.eval()


@torch.inference_mode()
def logits_of(model: nn.Module, frames: list[np.ndarray], batch: int = 32) -> np.ndarray:
    out = []
    for a in range(0, len(frames), batch):
        x, m = H._batch([f.astype(np.float32) for f in frames[a:a + batch]])
        out.append(model(x, m).numpy())
    return np.concatenate(out)


def render(path: Path) -> None:
    from avemo.markdown import replace_section

    runs = json.loads(OUT.read_text())["runs"]
    lines = [BEGIN, "## Voice: fine-tuning a Whisper block (issue #10; not adopted)", "",
             "Whisper's 4th block trained with `attn_L4`'s head (from that head, trained first on the frozen layer), "
             "from each clip's cached layer-3 frames, against the same head on the frozen block; leave one corpus "
             "out, clean audio, one seed (`benchmarks/voice_finetune.py`). UAR % over the held-out corpus's own "
             "classes.", "", "| run | held-out corpus | frozen block | tuned block |", "|---|---|---|---|"]
    for r in runs:
        for f in r["folds"]:
            lines.append(f"| `{r['command'].replace('python benchmarks/voice_finetune.py ', '')}` (commit "
                         f"`{r['commit']}`) | {f['fold']} | {100 * f['frozen']['uar']:.1f} | "
                         f"{100 * f['tuned']['uar']:.1f} |")
    lines += ["", "Within half a point either way on SAVEE and CASIA at two learning rates (a fold's tuning: 6 minutes "
              "on 2 cores), so the other folds were not run and the shipped members keep the frozen encoder.", END]
    replace_section(path, BEGIN, END, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", type=Path, nargs="?", const=Path("BENCHMARKS.md"), default=None,
                    help="write the BENCHMARKS.md section from the stored runs and stop")
    ap.add_argument("--folds", nargs="*", help="held-out corpora (default: all six)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--block-lr", type=float, default=3e-5)
    ap.add_argument("--head-lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    if args.render is not None:
        render(args.render)
        return
    torch.set_num_threads(2)
    data = Data()
    l3, l4 = data.frames("clean", 3), data.frames("clean", 4)
    weights = read_ct2_weights(model_dir() / "model.bin")
    check = WhisperBlock(weights, "layer_3/").eval()
    with torch.inference_mode():  # the block reproduces the cached layer 4 from layer 3 (float16 cache)
        for i in (0, 1500, 3000):
            x, m = H._batch([l3[i].astype(np.float32)])
            err = float((check(x, m)[0].numpy() - l4[i]).__abs__().max() / np.abs(l4[i]).max())
            if err > 1e-2:
                raise SystemExit(f"the torch block does not reproduce layer 4 (relative error {err:.3g})")
    rows = []
    for fold in loco_folds(data.samples):
        name = data.samples[int(fold.test_idx[0])].corpus
        if args.folds and name not in args.folds:
            continue
        t0 = time.time()
        tr, te = fold.train_idx, fold.test_idx
        f_tr = [l4[i] for i in tr]
        stack = np.concatenate([f[::4] for f in f_tr]).astype(np.float32)
        mu, sd = stack.mean(0), stack.std(0) + 1e-3
        head = H.train_attn(f_tr, data.y[tr], data.corpus[tr], data.sets, CFG, mu, sd)
        frozen = H.attn_logits(head, [l4[i] for i in te], mu, sd)
        t1 = time.time()
        model = Tuned(WhisperBlock(weights, "layer_3/"), head, mu, sd)
        finetune(model, [l3[i] for i in tr], data.y[tr], data.corpus[tr], data.sets, args.epochs, args.block_lr,
                 args.head_lr, args.batch, seed=0)
        tuned = logits_of(model, [l3[i] for i in te])
        classes = data.sets[name]
        row = {"fold": name, "n": int(len(te)), "seconds_head": round(t1 - t0), "seconds_tune": round(time.time() - t1)}
        for key, z in (("frozen", frozen), ("tuned", tuned)):
            s = scores(restrict(z, data.corpus[te], data.sets, logits=True), data.y[te], classes)
            row[key] = {"uar": s["uar"], "accuracy": s["accuracy"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    opts = " ".join(f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
                    for k, v in vars(args).items() if v is not None and k != "render")
    out = {"command": f"python benchmarks/voice_finetune.py {opts}", "commit": git_commit(), "machine": machine(),
           "recipe": CFG.to_dict(), "folds": rows,
           "mean_uar": {k: float(np.mean([r[k]["uar"] for r in rows])) for k in ("frozen", "tuned")} if rows else {}}
    doc = json.loads(OUT.read_text()) if OUT.is_file() else {"runs": []}  # each run kept, newest last
    doc["runs"].append(out)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(out["mean_uar"]))


if __name__ == "__main__":
    main()

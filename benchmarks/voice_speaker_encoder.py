"""A second offline speech encoder beside Whisper base, measured leave-one-corpus-out (issue #10, point 2).

The encoder: Resemblyzer's GE2E voice encoder (``pip install resemblyzer``, Apache-2.0; its 17 MB
``pretrained.pt`` ships inside the wheel, checked here by SHA-256), a 3-layer LSTM over 40-band mel frames
trained to tell speakers apart (LibriSpeech, VoxCeleb 1 and 2). It hears *how* a voice sounds, which is what
Whisper, trained to transcribe, is taught to ignore; whether that helps emotion on an unseen corpus is the
question. Features per clip (volume raised to -30 dBFS as Resemblyzer does; no silence trimming):

* ``emb``: the speaker embedding (256-d; L2-normed mean over 1.6 s partials, Resemblyzer's recipe);
* ``lstm0`` .. ``lstm2``: each LSTM layer's outputs over the whole clip, mean and standard deviation (512-d).

Rows: the same linear head and protocol as ``benchmarks/voice_nested_select.py`` (corpus-masked, balanced
loss, L2 0.1, one augmented copy of every training clip, standardised on the training side), each held-out
corpus scored with a model trained on the other five, plus the inner LOCO over those five (all a nested choice
may look at). The augmented copies are the Whisper pass's own (``avemo.audio.whisper_features.condition_fn``).

    python benchmarks/voice_speaker_encoder.py extract --condition clean --shard 0/2   # (and 1/2, then aug)
    python benchmarks/voice_speaker_encoder.py run [--jobs 2]   # -> benchmarks/results/voice_multi/speaker_encoder.json
    python benchmarks/voice_speaker_encoder.py --render BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voice_nested_select import Tables, loco_row, outer_and_inner  # noqa: E402

from avemo.config import cache_root  # noqa: E402
from avemo.datasets.speech import SPEECH_CORPORA, read_speech_corpora  # noqa: E402
from avemo.training import speech_heads as H  # noqa: E402

OUT = Path("benchmarks/results/voice_multi/speaker_encoder.json")
BEGIN, END = "<!-- voice-speaker-encoder:begin -->", "<!-- voice-speaker-encoder:end -->"
WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"  # resemblyzer 0.1.4
GROUPS = ("emb", "lstm0", "lstm1", "lstm2")
WIDTH = {"emb": 256, "lstm0": 512, "lstm1": 512, "lstm2": 512}
SR, HOP, PARTIAL = 16000, 160, 160  # 10 ms mel frames, 1.6 s partials


# ------------------------------------------------------------------------------------------------ encoder
class SpeakerEncoder:
    """Resemblyzer's LSTM, layer by layer, loaded from the installed wheel's weights (hash-checked)."""

    def __init__(self) -> None:
        spec = importlib.util.find_spec("resemblyzer")
        if spec is None or spec.origin is None:
            sys.exit("resemblyzer is not installed: pip install --no-deps resemblyzer==0.1.4")
        path = Path(spec.origin).parent / "pretrained.pt"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != WEIGHTS_SHA256:
            sys.exit(f"{path}: SHA-256 {digest[:16]}... is not resemblyzer 0.1.4's weights")
        state = torch.load(path, map_location="cpu", weights_only=False)["model_state"]
        self.layers = []
        for k in range(3):
            lstm = torch.nn.LSTM(40 if k == 0 else 256, 256, 1, batch_first=True)
            lstm.load_state_dict({f"{n}_l0": state[f"lstm.{n}_l{k}"]
                                  for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
            self.layers.append(lstm.eval())
        self.linear = torch.nn.Linear(256, 256)
        self.linear.load_state_dict({"weight": state["linear.weight"], "bias": state["linear.bias"]})

    @staticmethod
    def mel(wave: np.ndarray) -> np.ndarray:
        """Resemblyzer's input: a power mel spectrogram, 40 bands, 25 ms windows every 10 ms, ``(frames, 40)``."""
        import librosa

        rms = np.sqrt(np.mean(wave.astype(np.float64) ** 2)) + 1e-9
        gain = 10 ** ((-30 - 20 * np.log10(rms)) / 20)
        wave = wave * max(1.0, gain)  # raise quiet clips only, as Resemblyzer's normalize_volume(increase_only)
        return librosa.feature.melspectrogram(y=wave, sr=SR, n_fft=400, hop_length=HOP, n_mels=40
                                              ).astype(np.float32).T

    @staticmethod
    def partials(n_samples: int) -> list[int]:
        """Resemblyzer's partial starts (mel frames): 1.3 a second, the last kept if >= 75 % covered."""
        n_frames = int(np.ceil((n_samples + 1) / HOP))
        step = int(round(SR / 1.3 / HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL + step + 1), step))
        if len(starts) > 1 and (n_samples - starts[-1] * HOP) / (PARTIAL * HOP) < 0.75:
            starts = starts[:-1]
        return starts

    @torch.inference_mode()
    def features(self, wave: np.ndarray) -> dict[str, np.ndarray]:
        starts = self.partials(len(wave))
        end = (starts[-1] + PARTIAL) * HOP
        mel = self.mel(np.pad(wave, (0, max(0, end - len(wave)))))
        out, x = {}, torch.from_numpy(mel[:max(2, 1 + len(wave) // HOP)])[None]  # the clip's own frames
        for k, lstm in enumerate(self.layers):
            x, _ = lstm(x)
            out[f"lstm{k}"] = np.concatenate([x[0].mean(0).numpy(), x[0].std(0).numpy()])
        h = torch.from_numpy(np.stack([mel[s:s + PARTIAL] for s in starts]))
        for lstm in self.layers:
            h, (last, _) = lstm(h)
        e = torch.relu(self.linear(last[-1]))
        e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-9)
        m = e.mean(0)
        out["emb"] = (m / m.norm().clamp_min(1e-9)).numpy()
        return out


def table_path(condition: str, n: int, shard: str | None = None) -> Path:
    tail = "" if shard is None else "_shard" + shard.replace("/", "of")
    return cache_root() / "voice_multi" / f"speaker_{condition}_{n}{tail}.npy"


def extract(condition: str, shard: str) -> None:
    """Features of every ``i``-th clip of ``i/n`` into ``(clips, 1792)`` (NaN where another shard's)."""
    from avemo.audio.whisper_features import condition_fn
    from avemo.media import read_audio

    torch.set_num_threads(1)
    i, n = (int(v) for v in shard.split("/"))
    samples = read_speech_corpora()
    enc = SpeakerEncoder()
    table = np.full((len(samples), sum(WIDTH.values())), np.nan, np.float32)
    t0 = time.time()
    for k in range(i, len(samples), n):
        s = samples[k]
        wave = condition_fn(condition, Path(s.path).name)(read_audio(s.path, sample_rate=SR))
        f = enc.features(wave)
        table[k] = np.concatenate([f[g] for g in GROUPS])
        if k // n % 200 == 0:
            print(f"{k}/{len(samples)} {time.time() - t0:.0f} s", flush=True)
    path = table_path(condition, len(samples), shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, table)
    print(f"{path}: {int((~np.isnan(table[:, 0])).sum())} clips in {time.time() - t0:.0f} s", flush=True)


def combined(condition: str, n: int) -> np.ndarray:
    """The shards of one condition joined (and stored joined)."""
    path = table_path(condition, n)
    if path.is_file():
        return np.load(path)
    parts = sorted(path.parent.glob(path.stem + "_shard*.npy"))
    if not parts:
        sys.exit(f"{path}: missing; run `extract --condition {condition}` first")
    table = np.load(parts[0])
    for p in parts[1:]:
        t = np.load(p)
        table = np.where(np.isnan(table), t, table)
    if np.isnan(table[:, 0]).any():
        sys.exit(f"{path}: {int(np.isnan(table[:, 0]).sum())} clips missing; a shard did not finish")
    np.save(path, table)
    return table


# ------------------------------------------------------------------------------------------------ heads
@dataclass(frozen=True)
class Row:
    """Which features feed the shipped head recipe (linear, L2 0.1, augmented copies)."""

    name: str
    whisper: tuple[int, ...] = ()
    speaker: tuple[str, ...] = ()
    ensemble: bool = False  # one head per encoder, log-probabilities averaged (else one head on both)


ROWS = (
    Row("Whisper L2-4 (the shipped recipe)", whisper=(2, 3, 4)),
    Row("speaker embedding", speaker=("emb",)),
    Row("speaker LSTM layers 0-2", speaker=("lstm0", "lstm1", "lstm2")),
    Row("Whisper L2-4 + speaker embedding", whisper=(2, 3, 4), speaker=("emb",)),
    Row("Whisper L2-4 + speaker LSTM layers 0-2", whisper=(2, 3, 4), speaker=("lstm0", "lstm1", "lstm2")),
    Row("two heads, Whisper L2-4 and speaker embedding", whisper=(2, 3, 4), speaker=("emb",), ensemble=True),
    Row("two heads, Whisper L2-4 and speaker LSTM layers 0-2", whisper=(2, 3, 4), speaker=("lstm0", "lstm1", "lstm2"),
        ensemble=True),
)


class Both(Tables):
    """The Whisper pooled tables and the speaker-encoder tables, clip for clip."""

    def __init__(self) -> None:
        super().__init__()
        n = len(self.y)
        self.speaker = {c: combined(c, n) for c in ("clean", "aug")}

    def features(self, row: Row, condition: str) -> np.ndarray:
        parts = [self.x(condition, row.whisper)] if row.whisper else []
        offsets = np.cumsum([0] + [WIDTH[g] for g in GROUPS])
        for g in row.speaker:
            j = GROUPS.index(g)
            parts.append(self.speaker[condition][:, offsets[j]:offsets[j + 1]])
        return np.concatenate(parts, axis=1).astype(np.float32)


def fit_predict(row: Row, data: Both, tr: np.ndarray, te: np.ndarray) -> np.ndarray:
    """Log-probabilities over the 8 classes for ``te`` from ``row``'s head(s) trained on ``tr`` (+ aug copies)."""
    if row.ensemble:
        parts = (Row("", whisper=row.whisper), Row("", speaker=row.speaker))
        return np.mean([fit_predict(p, data, tr, te) for p in parts], axis=0)
    xc, xa = data.features(row, "clean"), data.features(row, "aug")
    has = tr[~np.isnan(xa[tr]).any(1)]
    x_tr = np.concatenate([xc[tr], xa[has]])
    y_tr, c_tr = np.concatenate([data.y[tr], data.y[has]]), np.concatenate([data.corpus[tr], data.corpus[has]])
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-3
    model = H.train_linear((x_tr - mu) / sd, y_tr, c_tr, data.sets, H.HeadConfig(weight_decay=0.1, seed=0))
    z = H.linear_logits(model, ((xc[te] - mu) / sd).astype(np.float32))
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def one_outer(args: tuple[Row, str]) -> dict:
    torch.set_num_threads(1)
    row, outer = args
    data = Both()
    return {"row": row.name, **outer_and_inner(lambda tr, te: fit_predict(row, data, tr, te), data, outer, row.name)}


def run(jobs: int) -> None:
    from avemo.provenance import git_commit, machine

    done = json.loads(OUT.read_text()) if OUT.is_file() else {"rows": []}
    nested = Path("benchmarks/results/voice_multi/nested.json")
    if nested.is_file():  # the first row is the nested table's shipped-recipe candidate, fit for fit
        for r in json.loads(nested.read_text())["rows"]:
            if r["candidate"].endswith("(shipped recipe)") and all(
                    (x["row"], x["outer"]) != (ROWS[0].name, r["outer"]) for x in done["rows"]):
                done["rows"].append({**{k: v for k, v in r.items() if k != "candidate"}, "row": ROWS[0].name,
                                     "from": str(nested)})
    have = {(r["row"], r["outer"]) for r in done["rows"]}
    todo = [(r, o) for r in ROWS for o in SPEECH_CORPORA if (r.name, o) not in have]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for res in pool.map(one_outer, todo):
            done["rows"].append(res)
            done.update({"row_defs": [asdict(r) for r in ROWS], "commit": git_commit(), "machine": machine(),
                         "weights_sha256": WEIGHTS_SHA256,
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(done, indent=1))  # after every cell: an interrupted run resumes
    print(render(done))


def render(res: dict) -> str:
    names = [r["name"] for r in res["row_defs"]]
    cell = {(r["row"], r["outer"]): r for r in res["rows"]}
    corpora = [c for c in SPEECH_CORPORA if all((n, c) in cell for n in names)]
    lines = [BEGIN, "### A second encoder: Resemblyzer's speaker encoder beside Whisper (issue #10)", "",
             f"`python benchmarks/voice_speaker_encoder.py run` then `--render` (commit `{res['commit']}`, "
             f"{res['date']}; `{OUT}`). Resemblyzer 0.1.4's GE2E speaker encoder (weights inside the PyPI wheel, "
             "Apache-2.0, SHA-256 checked), a 3-layer LSTM trained to tell speakers apart: its embedding, or each "
             "layer's outputs pooled (mean and std). Same head for every row: linear, L2 0.1, corpus-masked "
             "balanced loss, one augmented copy of every training clip. Each cell: UAR (%) on the corpus left "
             "out, over its own classes; in brackets the inner mean UAR (LOCO over the five training corpora), "
             "all a choice may look at.", "",
             "| features | " + " | ".join(corpora) + " | mean UAR | mean 8-way UAR | inner mean |",
             "|---|" + "---|" * (len(corpora) + 3)]
    lines += [loco_row(n, [cell[(n, c)] for c in corpora], inner=True) for n in names]
    base = [cell[(names[0], c)] for c in corpora]
    best = max(names[1:], key=lambda n: np.mean([cell[(n, c)]["inner_mean"] for c in corpora]))
    mean = 100 * np.mean([r["uar"] for r in base])
    lines += ["", f"Read: no row with the speaker encoder beats Whisper alone ({mean:.1f} mean UAR); "
              f"the best of them by the inner mean, which a nested choice would look at, is `{best}` "
              f"({100 * np.mean([cell[(best, c)]['uar'] for c in corpora]):.1f} held out, inner "
              f"{100 * np.mean([cell[(best, c)]['inner_mean'] for c in corpora]):.1f} against "
              f"{100 * np.mean([r['inner_mean'] for r in base]):.1f}). Alone the speaker encoder is weaker everywhere "
              "except CASIA, where its LSTM layers beat Whisper, but that gain does not survive being combined. "
              "Not adopted: the voice model stays on Whisper base alone.", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", default="run", choices=["run", "extract"])
    ap.add_argument("--condition", default="clean", choices=["clean", "aug"])
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--render", type=Path, help="write the section into this markdown file and stop")
    args = ap.parse_args()
    if args.render:
        from avemo.markdown import replace_section

        replace_section(args.render, BEGIN, END, render(json.loads(OUT.read_text())))
    elif args.command == "extract":
        extract(args.condition, args.shard)
    else:
        run(args.jobs)


if __name__ == "__main__":
    main()

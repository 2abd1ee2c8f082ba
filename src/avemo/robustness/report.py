"""``avemo robustness``: one report on how the face, voice and fusion bundles (the defaults, or any named) hold up.

Parts (each measured on real data; the sizes are :class:`Sizes`, smaller with ``--quick``):

- **voice under its conditions**: white noise and babble (six talkers of other corpora and languages) at SNR
  20 / 10 / 5 / 0 dB, reverberation (synthetic rooms, RT60 0.3 and 0.8 s), band limits (telephone 300-3400 Hz,
  8 kHz narrowband) and codecs (MP3 32 kbit/s, Opus 16 kbit/s), on RAVDESS speech (a fixed subset of every
  actor) and on SAVEE (English, 4 other speakers). The voice path is the analyzer's: the utterance's speech
  (silence trimmed as the bundle says), 3 s windows every second, mean probability; the condition is applied
  to the trimmed speech, so an SNR is relative to the speech itself. Scores over the corpus's own classes.
- **face under its conditions**: blur, low light, JPEG and intra H.264 compression, occluded eyes or mouth, a
  turned or tilted head, on a fixed random subset of FER-2013 PrivateTest, through the analyzer's face
  network (its ONNX runtime, int8 where shipped, the bundle's test-time views).
- **missing modality**: pairs of a RAVDESS utterance and a PrivateTest face of the same emotion (synthetic
  pairs: no audio-visual corpus with faces is on these machines), fused by the fusion bundle with both, with
  the face absent and with the voice absent.
- **adversarial**: FGSM and PGD (:mod:`avemo.robustness.adversarial`) on the waveform (the voice bundle's torch
  module includes its log-mel front end), on the face crops, and on both at once through the fusion (DARE,
  Mishra et al. 2021). Budgets in signal units: for the voice the perturbation's SNR against the window's speech
  (L-infinity bound ``eps = rms * 10^(-SNR/20)``, so its SNR is at least the stated value), for faces grey
  levels out of 255 (L-infinity).
- **a defence**: input smoothing of the face crops (a Gaussian blur of 0.5 or 1 pixel before the network, both
  fixed beforehand, none chosen on the data), its clean accuracy (on the attack subset and on the larger face
  subset), and its accuracy under PGD made against the plain network (transferred) and through the blur
  (adaptive).

What a bundle was trained on is read from its ``meta.trained_on``: the shipped voice bundle saw every RAVDESS
actor and every SAVEE speaker, so both voice tables measure the drop on speakers it knows (none is held out;
the section says which corpora the bundle saw). Results go to
``benchmarks/results/robustness/report.json`` (with plots beside it) and the robustness section of BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avemo.config import data_root
from avemo.inference.predictors import DEFAULT_MODELS
from avemo.labels import EMOTIONS
from avemo.provenance import git_commit, machine

BEGIN, END = "<!-- robustness:begin -->", "<!-- robustness:end -->"
RESULTS = Path("benchmarks") / "results" / "robustness"


@dataclass(frozen=True)
class Sizes:
    """How much data each part uses (fixed subsets drawn with ``seed``)."""

    ravdess_per_actor: int = 12
    ravdess_actors: int = 24  #: actors used, spread over the 24 (every 24 / n-th)
    savee_per_speaker: int = 60
    face_n: int = 1200
    voice_attack_n: int = 96
    face_attack_n: int = 120
    pairs_n: int = 48
    pgd_steps: int = 5
    babble_pool: int = 40
    seed: int = 0


def scaled_sizes(share: float) -> Sizes:
    """The default subsets cut to ``share`` of their examples (at least 1 of each; attack steps and the babble
    pool unchanged)."""
    base = Sizes()
    cut = {k: max(1, round(getattr(base, k) * share)) for k in ("ravdess_per_actor", "savee_per_speaker", "face_n",
                                                                  "voice_attack_n", "face_attack_n", "pairs_n")}
    return dataclasses.replace(base, **cut)


QUICK = Sizes(ravdess_per_actor=1, ravdess_actors=6, savee_per_speaker=2, face_n=40, voice_attack_n=4,
              face_attack_n=8, pairs_n=4, pgd_steps=2, babble_pool=8)
VOICE_FGSM_SNR = (40.0, 30.0, 20.0)
VOICE_PGD_SNR = (40.0, 30.0)
FACE_FGSM_LEVELS = (1.0, 2.0, 4.0, 8.0)
FACE_PGD_LEVELS = (2.0, 8.0)
JOINT_BUDGETS = ((40.0, 2.0), (30.0, 4.0))  # (voice SNR dB, face grey levels)
DEFENCE_SIGMAS = (0.5, 1.0)


def scores(probs: np.ndarray, y: np.ndarray, labels: Sequence[str], classes: Sequence[str]) -> dict[str, float]:
    """Accuracy and unweighted average recall with the prediction restricted to ``classes`` (a set's missing
    classes are unknown, never negatives)."""
    keep = np.array([lab in classes for lab in labels])
    p = np.where(keep, np.asarray(probs, dtype=np.float64), -np.inf)
    pred = p.argmax(1)
    recalls = [float((pred[y == k] == k).mean()) for k in np.unique(y)]
    return {"accuracy": float((pred == y).mean()), "uar": float(np.mean(recalls)), "n": int(len(y))}


# ---- data -----------------------------------------------------------------------------------------------------

def _stratified(samples: Sequence[Any], per_group: int, key: Callable[[Any], str], seed: int) -> list[Any]:
    """``per_group`` samples of every group, spread over the labels (round robin over shuffled labels)."""
    rng = np.random.default_rng(seed)
    out = []
    for group in sorted({key(s) for s in samples}):
        own = [s for s in samples if key(s) == group]
        by_label: dict[str, list[Any]] = {}
        for i in rng.permutation(len(own)):
            by_label.setdefault(own[i].label, []).append(own[i])
        labels = sorted(by_label)
        rng.shuffle(labels)
        picked: list[Any] = []
        while len(picked) < min(per_group, len(own)):
            for lab in labels:
                if by_label[lab] and len(picked) < per_group:
                    picked.append(by_label[lab].pop())
        out += picked
    return out


def speech_sets(sizes: Sizes) -> dict[str, list[Any]]:
    """The RAVDESS and SAVEE utterances of the voice part."""
    from avemo.datasets import read_corpus

    actors = {int(a) for a in np.linspace(1, 24, sizes.ravdess_actors).round()}
    speakers = [s for s in read_corpus("ravdess") if int(s.meta["actor"]) in actors]
    ravdess = _stratified(speakers, sizes.ravdess_per_actor, lambda s: s.speaker, sizes.seed)
    savee = read_corpus("manifest", data_root() / "speech-extra-16k" / "savee" / "manifest.csv", corpus="savee")
    return {"ravdess": ravdess,
            "savee": _stratified(list(savee), sizes.savee_per_speaker, lambda s: s.speaker, sizes.seed)}


def babble_talkers(sizes: Sizes, sample_rate: int) -> list[np.ndarray]:
    """Speech of other people for babble: EMOVO (Italian) and CASIA (Mandarin) utterances, silence trimmed."""
    from avemo.datasets import read_corpus
    from avemo.media import read_audio
    from avemo.training.data import trim_silence

    pool = []
    for corpus in ("emovo", "casia"):
        table = read_corpus("manifest", data_root() / "speech-extra-16k" / corpus / "manifest.csv", corpus=corpus)
        pool += list(table)
    rng = np.random.default_rng(sizes.seed + 1)
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(sizes.babble_pool, len(pool)), replace=False)]
    return [trim_silence(read_audio(s.path, sample_rate), 40.0) for s in chosen]


def fer_private(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` PrivateTest faces (a fixed random subset) and their labels."""
    from avemo.datasets import load_fer_image, read_corpus

    private = [s for s in read_corpus("fer2013") if s.split == "private_test"]
    pick = np.random.default_rng(seed).choice(len(private), size=min(n, len(private)), replace=False)
    chosen = [private[i] for i in sorted(pick)]
    return np.stack([load_fer_image(s) for s in chosen]), [s.label for s in chosen]


# ---- the voice and face paths, as the analyzer runs them -------------------------------------------------------

class VoicePath:
    """A voice bundle on whole utterances: trimmed speech -> windows -> mean probabilities over EMOTIONS."""

    def __init__(self, name: str) -> None:
        from avemo.inference.predictors import VoicePredictor
        from avemo.models.bundles import load

        self.bundle = load(name)
        self.predictor = VoicePredictor(self.bundle, threads=1)
        self.sample_rate = self.bundle.sample_rate
        self.window_s = self.bundle.window_s
        self.hop_s = float(self.bundle.preprocessing.eval_hop_s)
        self.trim_db = float(self.bundle.preprocessing.trim_db)

    def speech(self, path: Path) -> np.ndarray:
        from avemo.media import read_audio
        from avemo.training.data import trim_silence

        return trim_silence(read_audio(path, self.sample_rate), self.trim_db)

    def windows(self, wave: np.ndarray) -> np.ndarray:
        from avemo.audio import frame_windows, make_windows

        wins = make_windows(max(wave.size, 1) / self.sample_rate, self.window_s, self.hop_s)
        return frame_windows(wave, self.sample_rate, wins, window_s=self.window_s)

    def probs(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Mean probabilities over each utterance's windows, over EMOTIONS."""
        framed = [self.windows(w) for w in waves]
        owner = np.concatenate([np.full(len(f), i) for i, f in enumerate(framed)])
        p = self.predictor.predict(np.concatenate(framed))
        return np.stack([p[owner == i].mean(0) for i in range(len(waves))])

    def centre_window(self, wave: np.ndarray) -> np.ndarray:
        """The window the attacks work on: the middle ``window_s`` of the speech (zero-padded if shorter)."""
        n = int(round(self.window_s * self.sample_rate))
        if wave.size >= n:
            start = (wave.size - n) // 2
            return wave[start:start + n].astype(np.float32)
        return np.pad(wave, (0, n - wave.size)).astype(np.float32)


class FacePath:
    """A face bundle on aligned grey crops, as the analyzer runs it (ONNX, int8 where shipped, its views)."""

    def __init__(self, name: str) -> None:
        from avemo.inference.predictors import FacePredictor
        from avemo.models.bundles import load

        self.bundle = load(name)
        self.predictor = FacePredictor(self.bundle, int8=self.bundle.has_int8, threads=1)
        self.labels = tuple(self.bundle.labels)

    def probs(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities over the bundle's own labels."""
        return self.predictor.probs(crops)


# ---- conditions ------------------------------------------------------------------------------------------------

def voice_conditions(sample_rate: int, talkers: Sequence[np.ndarray]) -> list[tuple[str, str, Callable]]:
    """(group, name, fn(wave, index) -> wave) for every voice condition."""
    from avemo.robustness import conditions as c
    from avemo.robustness.corruptions import add_noise, codec_round_trip, telephone_band

    out: list[tuple[str, str, Callable]] = [("clean", "clean", lambda x, i: x)]
    for snr in (20, 10, 5, 0):
        out.append(("white noise", f"white noise, SNR {snr} dB", lambda x, i, s=snr: add_noise(x, s, seed=i)))
    for snr in (20, 10, 5, 0):
        out.append(("babble", f"babble (6 talkers), SNR {snr} dB",
                    lambda x, i, s=snr: add_noise(x, s, noise=c.babble(talkers, x.size, seed=i))))
    for rt60 in (0.3, 0.8):
        out.append(("reverberation", f"reverberation, RT60 {rt60} s",
                    lambda x, i, r=rt60: c.reverberate(x, sample_rate, r, seed=i)))
    out.append(("band limit", "telephone band 300-3400 Hz", lambda x, i: telephone_band(x, sample_rate)))
    out.append(("band limit", "narrowband (8 kHz sampling)", lambda x, i: c.narrowband(x, sample_rate)))
    out.append(("codec", "MP3 32 kbit/s", lambda x, i: codec_round_trip(x, sample_rate, "libmp3lame", 32000)))
    out.append(("codec", "Opus 16 kbit/s", lambda x, i: codec_round_trip(x, sample_rate, "libopus", 16000)))
    return out


def face_conditions() -> list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]]:
    """(group, name, fn(crops) -> crops) for every face condition."""
    from avemo.robustness import conditions as c

    return [
        ("clean", "clean", lambda x: x),
        ("blur", "Gaussian blur, sigma 1 px", lambda x: c.blur(x, 1.0)),
        ("blur", "Gaussian blur, sigma 2 px", lambda x: c.blur(x, 2.0)),
        ("low light", "low light (1/4 of the light)", lambda x: c.low_light(x, 0.25)),
        ("low light", "dark (1/12 of the light) + sensor noise", lambda x: c.low_light(x, 1 / 12, noise=4.0)),
        ("compression", "JPEG quality 30", lambda x: c.jpeg(x, 30)),
        ("compression", "JPEG quality 10", lambda x: c.jpeg(x, 10)),
        ("compression", "H.264 intra, CRF 30", lambda x: c.h264(x, 30)),
        ("compression", "H.264 intra, CRF 40", lambda x: c.h264(x, 40)),
        ("occlusion", "eyes covered (band)", lambda x: c.occlude_band(x, "eyes")),
        ("occlusion", "mouth covered (band)", lambda x: c.occlude_band(x, "mouth")),
        ("pose", "head turned 30 deg (planar)", lambda x: c.turn_head(x, yaw=30.0)),
        ("pose", "head turned 45 deg (planar)", lambda x: c.turn_head(x, yaw=45.0)),
        ("pose", "head tilted 25 deg", lambda x: c.turn_head(x, roll=25.0)),
    ]


# ---- the parts -------------------------------------------------------------------------------------------------

def describe_training(trained_on: Any) -> str:
    """A bundle's ``meta.trained_on`` in words: a string as it is, a multi-corpus record as its clip counts."""
    if isinstance(trained_on, Mapping) and isinstance(trained_on.get("corpora"), Mapping):
        corpora = ", ".join(f"{name} {count}" for name, count in trained_on["corpora"].items())
        total = trained_on.get("clips", sum(trained_on["corpora"].values()))
        return f"{len(trained_on['corpora'])} corpora, {total} clips: {corpora}"
    return str(trained_on)


def voice_part(voice: VoicePath, sets: dict[str, list[Any]], talkers: Sequence[np.ndarray],
               log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    trained_on = describe_training(voice.bundle.meta.get("trained_on", "unknown"))
    for corpus, samples in sets.items():
        waves = [voice.speech(s.path) for s in samples]
        y = np.array([EMOTIONS.index(s.label) for s in samples])
        classes = sorted({s.label for s in samples}, key=EMOTIONS.index)
        rows = []
        for group, name, fn in voice_conditions(voice.sample_rate, talkers):
            t0 = time.perf_counter()
            p = voice.probs([fn(w, i) for i, w in enumerate(waves)])
            rows.append({"group": group, "condition": name, **scores(p, y, EMOTIONS, classes),
                         "seconds": round(time.perf_counter() - t0, 1)})
            log(f"voice {corpus}: {name}: {rows[-1]['accuracy']:.3f}")
        out[corpus] = {"n": len(samples), "speakers": len({s.speaker for s in samples}), "classes": classes,
                       "seen_by_model": corpus in trained_on.lower(), "rows": rows}
    out["trained_on"] = trained_on
    return out


def face_part(face: FacePath, crops: np.ndarray, labels: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    y = np.array([face.labels.index(lab) for lab in labels])
    rows = []
    for group, name, fn in face_conditions():
        t0 = time.perf_counter()
        p = face.probs(fn(crops))
        rows.append({"group": group, "condition": name, **scores(p, y, face.labels, face.labels),
                     "seconds": round(time.perf_counter() - t0, 1)})
        log(f"face: {name}: {rows[-1]['accuracy']:.3f}")
    return {"n": len(labels), "rows": rows}


def make_pairs(speech: Sequence[Any], face_labels: Sequence[str], n: int, seed: int) -> list[tuple[int, int]]:
    """(utterance index, face index) pairs of the same emotion (classes both sides have), ``n`` at most."""
    rng = np.random.default_rng(seed + 2)
    faces_by = {}
    for j, lab in enumerate(face_labels):
        faces_by.setdefault(lab, []).append(j)
    usable = [i for i, s in enumerate(speech) if s.label in faces_by]
    pick = rng.choice(len(usable), size=min(n, len(usable)), replace=False)
    return [(usable[k], int(rng.choice(faces_by[speech[usable[k]].label]))) for k in sorted(pick)]


def missing_part(voice: VoicePath, face: FacePath, fusion_name: str, speech: Sequence[Any], crops: np.ndarray,
                 face_labels: Sequence[str], pairs: Sequence[tuple[int, int]]) -> dict[str, Any]:
    from avemo.inference.predictors import Fusion
    from avemo.labels import project_probs

    fusion = Fusion(fusion_name)
    pv = voice.probs([voice.speech(speech[i].path) for i, _ in pairs])
    pf = project_probs(face.probs(crops[[j for _, j in pairs]]), face.labels, EMOTIONS)
    y = np.array([EMOTIONS.index(speech[i].label) for i, _ in pairs])
    classes = sorted({speech[i].label for i, _ in pairs}, key=EMOTIONS.index)
    nan = np.full_like(pf, np.nan)
    rows = [
        {"condition": "face and voice", **scores(fusion.fuse({"face": pf, "voice": pv}, face.labels), y, EMOTIONS,
                                                  classes)},
        {"condition": "face absent (voice only)", **scores(fusion.fuse({"face": nan, "voice": pv}, face.labels), y,
                                                            EMOTIONS, classes)},
        {"condition": "voice absent (face only)", **scores(fusion.fuse({"face": pf, "voice": nan}, face.labels), y,
                                                            EMOTIONS, classes)},
    ]
    return {"n": len(pairs), "classes": classes, "rows": rows}


def _torch_models(voice: VoicePath, face: FacePath, fusion_name: str) -> dict[str, Any]:
    """The torch modules the attacks differentiate through, keyed like the systems (``audio``, ``video``)."""
    import torch
    from torch import nn

    from avemo.models.bundles import load
    from avemo.models.encoders.visual import tta_logits

    torch.set_num_threads(1)
    vnet = voice.bundle.get_model("torch").eval()
    fnet = face.bundle.get_model("torch").eval()
    fusion_bundle = load(fusion_name)
    fusion = fusion_bundle.get_model("torch").eval()
    own_labels = fusion_bundle.architecture == "reliability_fusion"
    pre = face.bundle.preprocessing
    views = face.bundle.tta

    def onto(probs: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(probs.shape[0], len(EMOTIONS), dtype=probs.dtype)
        for k, lab in enumerate(labels):
            out[:, EMOTIONS.index(lab)] = probs[:, k]
        if "calm" not in labels and "neutral" in labels:  # the fusion's convention (models.fusion.late.onto_emotions)
            out[:, EMOTIONS.index("calm")] = out[:, EMOTIONS.index("neutral")]
        return out / out.sum(-1, keepdim=True).clamp_min(1e-12)

    class Face(nn.Module):
        """Grey crops in [0, 1], (B, 1, S, S) -> the bundle's logits (its normalisation and views)."""

        def __init__(self, smooth: float = 0.0) -> None:
            super().__init__()
            self.net, self.smooth = fnet, smooth
            self.eval()

        def forward(self, video: torch.Tensor) -> torch.Tensor:
            x = gaussian_blur(video, self.smooth) if self.smooth else video
            return tta_logits(self.net, (x - pre.mean) / pre.std, mode=views, crop=int(pre.crop)).float()

    class Keyed(nn.Module):
        """The attacks' convention: keyword inputs, ``{"logits": ...}`` out."""

        def __init__(self, face_net: nn.Module | None = None) -> None:
            super().__init__()
            self.face = face_net or Face()
            self.eval()  # scored as they run: batch norm on running statistics, no dropout

        def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
            if video is None:
                return {"logits": vnet(audio).float()}
            if audio is None:
                return {"logits": self.face(video)}
            pv, pf = torch.softmax(vnet(audio).float(), -1), torch.softmax(self.face(video), -1)
            if own_labels:  # the fusion takes each modality over its own classes
                fused = fusion({"face": pf, "voice": pv}, {"face": face.labels, "voice": voice.bundle.labels})
            else:
                fused = fusion({"face": onto(pf, face.labels), "voice": onto(pv, voice.bundle.labels)})
            return {"logits": torch.log(fused.clamp_min(1e-12))}

    return {"keyed": Keyed, "face": Face}


def gaussian_blur(x: Any, sigma: float) -> Any:
    """A differentiable Gaussian blur of (B, 1, H, W) images (the input-smoothing defence)."""
    import torch
    from torch.nn import functional as F

    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))


def _accuracy(model: Any, inputs: dict[str, Any], y: Any, labels: Sequence[str], classes: Sequence[str]) -> float:
    """Accuracy of ``model`` in eval mode (batch norm on its running statistics, no dropout) on ``inputs``."""
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(**inputs)["logits"].numpy()
    return scores(logits, y.numpy(), labels, classes)["accuracy"]


def adversarial_part(voice: VoicePath, face: FacePath, fusion_name: str, speech: Sequence[Any], crops: np.ndarray,
                     face_labels: Sequence[str], pairs: Sequence[tuple[int, int]], sizes: Sizes,
                     log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from avemo.robustness.adversarial import fgsm, pgd, pgd_joint

    models = _torch_models(voice, face, fusion_name)
    keyed = models["keyed"]()  # in eval mode; the attacks leave it in the mode they found it in
    steps = sizes.pgd_steps
    out: dict[str, Any] = {"pgd_steps": steps}

    # voice: one centre window per utterance
    rng = np.random.default_rng(sizes.seed + 3)
    vidx = sorted(rng.choice(len(speech), size=min(sizes.voice_attack_n, len(speech)), replace=False).tolist())
    audio = torch.from_numpy(np.stack([voice.centre_window(voice.speech(speech[i].path)) for i in vidx]))
    vy = torch.tensor([list(voice.bundle.labels).index(speech[i].label) for i in vidx])
    vclasses = sorted({speech[i].label for i in vidx}, key=EMOTIONS.index)
    rms = audio.pow(2).mean(1, keepdim=True).sqrt()
    vrows = [{"attack": "none", "budget": None, "accuracy": _accuracy(keyed, {"audio": audio}, vy,
                                                                       voice.bundle.labels, vclasses)}]
    for name, budgets in (("FGSM", VOICE_FGSM_SNR), ("PGD", VOICE_PGD_SNR)):
        for snr in budgets:
            eps = rms * 10 ** (-snr / 20)
            adv = (fgsm(keyed, {"audio": audio}, vy, modality="audio", epsilon=eps) if name == "FGSM" else
                   pgd(keyed, {"audio": audio}, vy, modality="audio", epsilon=eps, steps=steps, seed=sizes.seed))
            vrows.append({"attack": name, "budget": snr, "accuracy": _accuracy(keyed, adv, vy, voice.bundle.labels,
                                                                                  vclasses)})
            log(f"voice {name} SNR {snr} dB: {vrows[-1]['accuracy']:.3f}")
    out["voice"] = {"n": len(vidx), "unit": "SNR of the perturbation, dB", "rows": vrows}

    # faces: a fixed subset of the PrivateTest faces, in [0, 1]
    fidx = sorted(rng.choice(len(crops), size=min(sizes.face_attack_n, len(crops)), replace=False).tolist())
    video = torch.from_numpy(crops[fidx].astype(np.float32)[:, None] / 255.0)
    fy = torch.tensor([face.labels.index(face_labels[j]) for j in fidx])
    frows = [{"attack": "none", "budget": None, "accuracy": _accuracy(keyed, {"video": video}, fy, face.labels,
                                                                       face.labels)}]
    adversarial: dict[float, Any] = {}
    for name, budgets in (("FGSM", FACE_FGSM_LEVELS), ("PGD", FACE_PGD_LEVELS)):
        for level in budgets:
            eps = level / 255.0
            adv = (fgsm(keyed, {"video": video}, fy, modality="video", epsilon=eps) if name == "FGSM" else
                   pgd(keyed, {"video": video}, fy, modality="video", epsilon=eps, steps=steps, seed=sizes.seed))
            if name == "PGD":
                adversarial[level] = adv["video"]
            frows.append({"attack": name, "budget": level, "accuracy": _accuracy(keyed, adv, fy, face.labels,
                                                                                   face.labels)})
            log(f"face {name} {level:g}/255: {frows[-1]['accuracy']:.3f}")
    out["face"] = {"n": len(fidx), "unit": "grey levels of 255 (L-infinity)", "rows": frows}

    # both at once, through the fusion bundle
    pa = torch.from_numpy(np.stack([voice.centre_window(voice.speech(speech[i].path)) for i, _ in pairs]))
    pvid = torch.from_numpy(crops[[j for _, j in pairs]].astype(np.float32)[:, None] / 255.0)
    py = torch.tensor([EMOTIONS.index(speech[i].label) for i, _ in pairs])
    pclasses = sorted({speech[i].label for i, _ in pairs}, key=EMOTIONS.index)
    prms = pa.pow(2).mean(1, keepdim=True).sqrt()
    inputs = {"audio": pa, "video": pvid}
    jrows = [{"attack": "none", "voice_snr": None, "face_levels": None,
              "accuracy": _accuracy(keyed, inputs, py, EMOTIONS, pclasses)}]
    for snr, level in JOINT_BUDGETS:
        budgets = {"voice": {"audio": prms * 10 ** (-snr / 20)}, "face": {"video": level / 255.0}}
        budgets["both"] = {**budgets["voice"], **budgets["face"]}
        for target, eps in budgets.items():
            adv = pgd_joint(keyed, inputs, py, epsilons=eps, steps=steps, seed=sizes.seed)
            jrows.append({"attack": f"PGD on {target}", "voice_snr": snr, "face_levels": level,
                          "accuracy": _accuracy(keyed, adv, py, EMOTIONS, pclasses)})
            log(f"fused, PGD on {target} ({snr} dB, {level:g}/255): {jrows[-1]['accuracy']:.3f}")
    out["both"] = {"n": len(pairs), "rows": jrows}

    # the defence: input smoothing of the face crops
    drows = [{"defence": "none", "attack": "none", "budget": None, "accuracy": frows[0]["accuracy"]}]
    drows += [{"defence": "none", "attack": "PGD", "budget": level,
               "accuracy": next(r for r in frows if r["attack"] == "PGD" and r["budget"] == level)["accuracy"]}
              for level in FACE_PGD_LEVELS]
    larger = {}
    for sigma in DEFENCE_SIGMAS:
        smooth = keyed.__class__(models["face"](sigma))
        name = f"blur {sigma:g} px"
        drows.append({"defence": name, "attack": "none", "budget": None,
                      "accuracy": _accuracy(smooth, {"video": video}, fy, face.labels, face.labels)})
        for level in FACE_PGD_LEVELS:
            drows.append({"defence": name, "attack": "PGD on the plain network (transferred)", "budget": level,
                          "accuracy": _accuracy(smooth, {"video": adversarial[level]}, fy, face.labels, face.labels)})
            adv = pgd(smooth, {"video": video}, fy, modality="video", epsilon=level / 255.0, steps=steps,
                      seed=sizes.seed)
            drows.append({"defence": name, "attack": "PGD through the blur (adaptive)", "budget": level,
                          "accuracy": _accuracy(smooth, adv, fy, face.labels, face.labels)})
            log(f"defence {name} at {level:g}/255: transferred {drows[-2]['accuracy']:.3f}, "
                f"adaptive {drows[-1]['accuracy']:.3f}")
        # the clean cost on the larger subset of the face part, through the analyzer's runtime
        from avemo.robustness.conditions import blur

        y_all = np.array([face.labels.index(lab) for lab in face_labels])
        larger[name] = scores(face.probs(blur(crops, sigma)), y_all, face.labels, face.labels)["accuracy"]
    out["defence"] = {"n": len(fidx), "sigmas": list(DEFENCE_SIGMAS), "rows": drows, "clean_on_face_subset": larger,
                      "face_subset_n": len(face_labels)}
    return out


# ---- the whole report ------------------------------------------------------------------------------------------

def run(*, face: str | None = None, voice: str | None = None, fusion: str | None = None, quick: bool = False,
        sizes: Sizes | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every part, in turn; returns the stored result."""
    sizes = sizes or (QUICK if quick else Sizes())
    names = {"face": face or DEFAULT_MODELS["face"], "voice": voice or DEFAULT_MODELS["voice"],
             "fusion": fusion or DEFAULT_MODELS["fusion"]}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    vpath, fpath = VoicePath(names["voice"]), FacePath(names["face"])
    sets = speech_sets(sizes)
    talkers = babble_talkers(sizes, vpath.sample_rate)
    crops, face_labels = fer_private(sizes.face_n, sizes.seed)
    seconds["data"] = time.perf_counter() - t0
    result: dict[str, Any] = {"models": names, "sizes": dataclasses.asdict(sizes), "quick": quick}
    t0 = time.perf_counter()
    result["voice"] = voice_part(vpath, sets, talkers, log)
    seconds["voice"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result["face"] = face_part(fpath, crops, face_labels, log)
    seconds["face"] = time.perf_counter() - t0
    pairs = make_pairs(sets["ravdess"], face_labels, sizes.pairs_n, sizes.seed)
    t0 = time.perf_counter()
    result["missing"] = missing_part(vpath, fpath, names["fusion"], sets["ravdess"], crops, face_labels, pairs)
    seconds["missing"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result["adversarial"] = adversarial_part(vpath, fpath, names["fusion"], sets["ravdess"], crops, face_labels,
                                             pairs, sizes, log)
    seconds["adversarial"] = time.perf_counter() - t0
    result.update(seconds={k: round(v, 1) for k, v in seconds.items()}, commit=git_commit(), machine=machine(),
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  command="avemo robustness" + ("".join(f" --{k} {v}" for k, v in names.items()
                                                        if v != DEFAULT_MODELS[k])) + (" --quick" if quick else ""))
    return result


# ---- plots and the BENCHMARKS.md section ------------------------------------------------------------------------

def plot(result: dict[str, Any], folder: Path) -> list[Path]:
    """Three figures: voice accuracy against SNR, face accuracy per condition, accuracy against attack budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for corpus, part in ((k, v) for k, v in result["voice"].items() if isinstance(v, dict)):
        clean = part["rows"][0]["accuracy"]
        for group, style in (("white noise", "-"), ("babble", "--")):
            rows = [r for r in part["rows"] if r["group"] == group]
            snrs = [float(r["condition"].split("SNR ")[1].split()[0]) for r in rows]
            seen = " (seen)" if part["seen_by_model"] else ""
            ax.plot([40, *snrs], [clean, *[r["accuracy"] for r in rows]], style, marker="o",
                    label=f"{corpus}{seen}, {group}")
    ax.set_xlabel("SNR (dB); 40 = clean")
    ax.set_ylabel("accuracy")
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    ax.set_title(f"voice ({result['models']['voice']}) under noise")
    fig.tight_layout()
    paths.append(folder / "voice_noise.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    rows = result["face"]["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.barh([r["condition"] for r in rows][::-1], [r["accuracy"] for r in rows][::-1], color="tab:blue")
    ax.axvline(rows[0]["accuracy"], color="k", lw=0.8)
    ax.set_xlabel("accuracy (FER-2013 PrivateTest subset)")
    ax.set_title(f"face ({result['models']['face']}) under its conditions")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    paths.append(folder / "face_conditions.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    adv = result["adversarial"]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    for ax, key, unit in ((axes[0], "voice", "perturbation SNR (dB)"), (axes[1], "face", "grey levels (of 255)")):
        part = adv[key]["rows"]
        clean = part[0]["accuracy"]
        for attack, marker in (("FGSM", "o"), ("PGD", "s")):
            rs = [r for r in part if r["attack"] == attack]
            ax.plot([r["budget"] for r in rs], [r["accuracy"] for r in rs], marker=marker, label=attack)
        ax.axhline(clean, color="k", lw=0.8, label="clean")
        ax.set_xlabel(unit)
        ax.set_ylabel("accuracy")
        ax.set_title(key)
        if key == "voice":
            ax.invert_xaxis()
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(folder / "adversarial.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _num(x: float | None, unit: str = "") -> str:
    return "" if x is None else f"{x:g}{unit}"


def render(result: dict[str, Any], figures: Sequence[str] = ()) -> str:
    m, s = result["machine"], result["sizes"]
    names = result["models"]
    voice = result["voice"]
    lines = [BEGIN, "## Robustness: noise, channel, occlusion, missing modality, attacks", "",
             f"`{result['command']}` (commit `{result['commit']}`, {result['date']}; {m['platform']}, "
             f"{m['cpu_count']} CPUs; {sum(result['seconds'].values()) / 60:.1f} min). Bundles: face "
             f"`{names['face']}`, voice `{names['voice']}`, fusion `{names['fusion']}`. What each part measures, and "
             "on which data, is in `avemo/robustness/report.py`; every subset is fixed (seed "
             f"{s['seed']}). Accuracy in %.", ""]
    if result.get("quick"):
        lines += ["**Quick mode: tiny subsets, a smoke test, not a measurement.**", ""]
    else:
        default = dataclasses.asdict(Sizes())
        cut = [f"{k} {v} (default {default[k]})" for k, v in s.items() if default.get(k) != v]
        if cut:
            lines += [f"**Smaller subsets than the defaults**: {', '.join(cut)}; read the figures with wider error "
                      "bars.", ""]
    corpora = [k for k, v in voice.items() if isinstance(v, dict)]
    lines += [f"### Voice ({names['voice']}: trained on {voice['trained_on']})", ""]
    for corpus in corpora:
        part = voice[corpus]
        seen = ("the bundle was **trained on these speakers**: absolute levels are optimistic, the drops are what "
                "to read" if part["seen_by_model"] else "speakers the bundle never saw")
        lines.append(f"- {corpus}: {part['n']} utterances of {part['speakers']} speakers, classes "
                     f"{', '.join(part['classes'])}; {seen}.")
    lines += ["", "| condition | " + " | ".join(f"{c} acc | {c} UAR" for c in corpora) + " |",
              "|---|" + "---|---|" * len(corpora)]
    for k, row in enumerate(voice[corpora[0]]["rows"]):
        cells = []
        for c in corpora:
            r, clean = voice[c]["rows"][k], voice[c]["rows"][0]
            delta = "" if k == 0 else f" ({100 * (r['accuracy'] - clean['accuracy']):+.1f})"
            cells += [f"{_pct(r['accuracy'])}{delta}", _pct(r["uar"])]
        lines.append(f"| {row['condition']} | " + " | ".join(cells) + " |")
    face = result["face"]
    lines += ["", f"### Face ({names['face']}, FER-2013 PrivateTest: {face['n']} faces, a fixed random subset)", "",
              "| condition | accuracy | UAR |", "|---|---|---|"]
    clean = face["rows"][0]["accuracy"]
    for r in face["rows"]:
        delta = "" if r is face["rows"][0] else f" ({100 * (r['accuracy'] - clean):+.1f})"
        lines.append(f"| {r['condition']} | {_pct(r['accuracy'])}{delta} | {_pct(r['uar'])} |")
    miss = result["missing"]
    lines += ["", f"### Missing modality ({names['fusion']}; {miss['n']} synthetic pairs)", "",
              "Each pair is a RAVDESS utterance and a PrivateTest face of the same emotion (no audio-visual corpus "
              "with faces is on these machines), so the two modalities are independent evidence, as they are not "
              f"in real video; classes: {', '.join(miss['classes'])}.", "", "| input | accuracy | UAR |",
              "|---|---|---|"]
    for r in miss["rows"]:
        lines.append(f"| {r['condition']} | {_pct(r['accuracy'])} | {_pct(r['uar'])} |")
    adv = result["adversarial"]
    lines += ["", f"### Adversarial perturbations (white-box, PGD {adv['pgd_steps']} steps from a random start)", "",
              f"Voice: {adv['voice']['n']} RAVDESS utterances (seen actors), the middle 3 s window of each; the budget "
              "is the perturbation's SNR against the window's speech (L-infinity, so the SNR is at least the stated "
              f"value). Face: {adv['face']['n']} PrivateTest faces through the bundle's views; the budget is the "
              "largest change of a pixel in grey levels of 255.", "",
              "| voice: attack | perturbation SNR | accuracy |", "|---|---|---|"]
    for r in adv["voice"]["rows"]:
        lines.append(f"| {r['attack']} | {_num(r['budget'], ' dB')} | {_pct(r['accuracy'])} |")
    lines += ["", "| face: attack | grey levels | accuracy |", "|---|---|---|"]
    for r in adv["face"]["rows"]:
        lines.append(f"| {r['attack']} | {_num(r['budget'], '/255')} | {_pct(r['accuracy'])} |")
    both = adv["both"]
    lines += ["", f"Both at once through `{names['fusion']}` ({both['n']} synthetic pairs as above):", "",
              "| attack | voice SNR (dB) | face (levels) | fused accuracy |", "|---|---|---|---|"]
    for r in both["rows"]:
        lines.append(f"| {r['attack']} | {_num(r['voice_snr'])} | {_num(r['face_levels'])} | {_pct(r['accuracy'])} |")
    d = adv["defence"]
    lines += ["", f"### A defence: input smoothing of the face (a Gaussian blur of "
              f"{' or '.join(f'{x:g}' for x in d['sigmas'])} px before the network; {d['n']} faces)", "",
              "| defence | attack | budget (levels) | accuracy |", "|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['defence']} | {r['attack']} | {_num(r['budget'])} | {_pct(r['accuracy'])} |")
    clean = result["face"]["rows"][0]["accuracy"]
    lines += ["", f"Clean accuracy on the {d['face_subset_n']} faces of the face table (analyzer's runtime): none "
              f"{_pct(clean)}, " + ", ".join(f"{k} {_pct(v)}" for k, v in d["clean_on_face_subset"].items()) + ".",
              ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join([*lines, "", END])


def write(result: dict[str, Any], results_dir: Path, markdown: Path) -> Path:
    """Store the JSON and the figures under ``results_dir`` and (re)write the BENCHMARKS.md section."""
    from avemo.markdown import replace_section

    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    figures = plot(result, results_dir)
    try:
        rel = [str(p.resolve().relative_to(markdown.resolve().parent)) for p in figures]
    except ValueError:
        rel = [str(p) for p in figures]
    return replace_section(markdown, BEGIN, END, render(result, rel))

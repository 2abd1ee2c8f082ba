"""The analysis result: a pandas DataFrame, one row per time window, with metadata in ``attrs``.

Columns: ``start``, ``end`` (seconds), ``face`` and ``speech`` (found in the window), ``speech_fraction`` (the
share of the window voice activity detection calls speech), ``source``
(``"av"``, ``"face"``, ``"voice"``, ``"text"`` (words alone) or ``"none"``: which modalities the fused row
rests on), ``face_<emotion>``, ``voice_<emotion>`` and ``fused_<emotion>`` probabilities over
:data:`avemo.labels.EMOTIONS` (NaN where that modality is absent), ``label`` and ``confidence``
(the fused top class), ``uncertain`` (the fused label's probability is under one half: more likely wrong than
right, so read it as "not sure"), ``weight_face``, ``weight_voice`` (and ``weight_text``) (how much each modality
counted in the window's fused answer; they sum to 1 over the modalities present), the evidence those weights rest
on, per modality: ``confidence_<m>`` (its top probability), ``margin_<m>`` (top minus second) and ``certainty_<m>``
(1 - entropy / log K, over the K classes its model has), NaN where ``m`` is absent; ``face_blendshapes`` (the share
of the window's frames whose face used the face model's blendshape member; 0: the crop network alone, NaN: no
face). With ``text`` on, ``transcript``, ``text_language``, ``text_words``, ``text_emotion_words`` (how many
of the words the text model reads as an emotion on their own, after a feel-verb or a first-person word; 0: the
fusion leaves the text out where a face or voice is present) and ``text_<emotion>`` too. With
several faces (``all_faces``), a ``track`` column says which face a row belongs to; live events
(:meth:`EmotionTimeline.from_events`) are rows with ``start == end``.
``attrs`` holds the source file, the sampling, the names and versions of the models used, and the
face box of every sampled frame (:attr:`EmotionTimeline.boxes`). pandas' own methods (``to_csv``,
``to_json``, ``to_parquet``, ...) work as on any DataFrame; :meth:`EmotionTimeline.save_json` writes
the timeline with its metadata and summary, :meth:`EmotionTimeline.load_json` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo.errors import AvemoError
from avemo.labels import EMOTIONS, emotion_color

MODALITIES: tuple[str, ...] = ("face", "voice", "fused")


def prob_columns(modality: str, labels: Sequence[str] = EMOTIONS) -> list[str]:
    """The probability columns of one modality, e.g. ``face_happy``."""
    return [f"{modality}_{name}" for name in labels]


#: the evidence each modality shows about itself, per window (what the reliability fusion weighs)
EVIDENCE: tuple[str, ...] = ("confidence", "margin", "certainty")


def evidence_columns(probs: dict[str, np.ndarray], labels: dict[str, Sequence[str]] | None = None
                     ) -> dict[str, np.ndarray]:
    """``<evidence>_<modality>`` columns from each modality's probabilities ``(N, 8)`` over EMOTIONS (NaN rows:
    absent), read over the classes the model has (``labels[m]``, default all): ``confidence`` (its top probability),
    ``margin`` (top minus second), ``certainty`` (1 - entropy / log K); NaN where the modality is absent."""
    from avemo.models.fusion.reliability import prob_features

    out: dict[str, np.ndarray] = {}
    for m, p in probs.items():
        names = tuple((labels or {}).get(m, EMOTIONS))
        own = np.asarray(p, dtype=np.float64)[:, [EMOTIONS.index(n) for n in names]]
        ok = ~np.isnan(own).any(axis=1)
        ev = prob_features(np.nan_to_num(own, nan=1.0 / len(names)), names, EVIDENCE)
        for k, name in enumerate(EVIDENCE):
            out[f"{name}_{m}"] = np.where(ok, np.round(ev[:, k], 4), np.nan)
    return out


class EmotionTimeline(pd.DataFrame):
    """Emotions over time for one input (and one face track): a DataFrame with ``summary`` and ``plot``."""

    @property
    def _constructor(self) -> type[EmotionTimeline]:
        return EmotionTimeline

    @property
    def labels(self) -> tuple[str, ...]:
        """The emotion classes of the probability columns."""
        return tuple(self.attrs.get("labels", EMOTIONS))

    @classmethod
    def concat(cls, parts: Sequence[EmotionTimeline]) -> EmotionTimeline:
        """The rows of several timelines of one input (e.g. one per face track): metadata of the first, the
        face boxes of all."""
        out = cls(pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True))
        out.attrs.update({k: v for k, v in parts[0].attrs.items() if k != "face_boxes"})
        boxes = [row for p in parts for row in p.attrs.get("face_boxes", [])]
        if boxes:
            out.attrs["face_boxes"] = boxes
        return out

    @classmethod
    def from_events(cls, events: Sequence[Any], **attrs: Any) -> EmotionTimeline:
        """Live events (:class:`avemo.inference.events.LiveEvent` or their dicts) as a timeline: one row per
        event at its media time (``start == end``), with the smoothed probabilities and latency besides; from a run
        with text, the words' emotions (``text_*``), the transcript and the text's weight too."""
        rows = []
        dicts = [event if isinstance(event, dict) else event.to_dict() for event in events]
        text = any(e.get("text_emotion_words") is not None or e.get("transcript") is not None for e in dicts)
        for e in dicts:
            row = {"start": e["time"], "end": e["time"], "face": e["face"] is not None,
                   "speech": e["voice"] is not None, "speech_fraction": e.get("speech_fraction"),
                   "source": e["source"]}
            for modality in (*MODALITIES, "smoothed"):
                probs = e.get(modality) or {}
                row.update({f"{modality}_{name}": probs.get(name, np.nan) for name in EMOTIONS})
            row.update({"label": e["label"], "confidence": e["confidence"], "latency_ms": e["latency_ms"],
                        "uncertain": bool(e.get("uncertain")),
                        **{f"weight_{m}": (e.get("weights") or {}).get(m, 0.0) for m in ("face", "voice")}})
            if text:
                probs = e.get("text") or {}
                row.update({f"text_{name}": probs.get(name, np.nan) for name in EMOTIONS})
                row.update(transcript=e.get("transcript"), text_emotion_words=e.get("text_emotion_words"),
                           weight_text=(e.get("weights") or {}).get("text", 0.0))
            rows.append(row)
        out = cls(pd.DataFrame.from_records(rows, columns=_event_columns(text)))
        out.attrs.update({"labels": list(EMOTIONS), **attrs})
        return out

    @property
    def tracks(self) -> list[Any]:
        """The face tracks the rows belong to (``[None]`` without a ``track`` column)."""
        return sorted(self["track"].dropna().unique().tolist()) if "track" in self.columns else [None]

    @property
    def boxes(self) -> pd.DataFrame:
        """The face box of every sampled frame: ``time``, ``track`` (-1 in main-face mode), ``x0 y0 x1 y1``
        in decoded-frame pixels."""
        return pd.DataFrame(self.attrs.get("face_boxes", []), columns=["time", "track", "x0", "y0", "x1", "y1"])

    @property
    def modalities(self) -> tuple[str, ...]:
        """The probability column groups present: face, voice, fused, and text when speech was transcribed."""
        return MODALITIES + (("text",) if f"text_{self.labels[0]}" in self.columns else ())

    @property
    def weight_columns(self) -> list[str]:
        """The ``weight_<modality>`` columns present (what each window's fused answer rests on)."""
        return [c for c in self.columns if isinstance(c, str) and c.startswith("weight_")]

    def probabilities(self, modality: str = "fused") -> np.ndarray:
        """The (windows, classes) probability matrix of one modality (NaN rows where absent)."""
        return self[prob_columns(modality, self.labels)].to_numpy(dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """Per-clip emotion distribution (mean fused probability over covered windows), dominant emotion,
        share of windows per top label, and how much of the clip had a face and speech; with text, the share of
        the windows with scored words that hold an emotion word (``text_emotion_share``: only those count in the
        fused answer where a face or voice is present)."""
        labels = self.labels
        covered = self[self["source"] != "none"] if len(self) else self
        out: dict[str, Any] = {
            "source": self.attrs.get("source"),
            "duration": float(self["end"].max() - self["start"].min()) if len(self) else 0.0,  # of the stretch
            "windows": int(len(self)),
            "face_coverage": float(self["face"].mean()) if len(self) else 0.0,
            "speech_coverage": float(self["speech"].mean()) if len(self) else 0.0,
        }
        for modality in self.modalities:
            probs = covered[prob_columns(modality, labels)].to_numpy(dtype=np.float64)
            valid = probs[~np.isnan(probs).any(axis=1)]
            if len(valid):
                mean = valid.mean(axis=0)
                out[f"{modality}_distribution"] = {n: round(float(p), 4) for n, p in zip(labels, mean)}
                out[f"{modality}_dominant"] = labels[int(mean.argmax())]
            else:
                out[f"{modality}_distribution"] = None
                out[f"{modality}_dominant"] = None
        out["dominant"] = out["fused_dominant"]
        if "text_emotion_words" in self.columns:
            scored = self["text_emotion_words"].dropna()
            out["text_emotion_share"] = round(float((scored > 0).mean()), 4) if len(scored) else None
        if "uncertain" in self.columns and len(covered):
            out["uncertain_share"] = round(float(covered["uncertain"].astype(bool).mean()), 4)
        weights = self.weight_columns
        if weights and len(covered):
            out["mean_weights"] = {c.removeprefix("weight_"): round(float(covered[c].mean()), 4) for c in weights}
        shares = covered["label"].value_counts(normalize=True) if len(covered) else pd.Series(dtype=float)
        out["label_share"] = {str(k): round(float(v), 4) for k, v in shares.items()}
        if len(self.tracks) > 1:
            out["tracks"] = {str(t): self[self["track"] == t].summary() for t in self.tracks}
        return out

    def plot(self, path: str | Path | None = None, *, title: str | None = None):
        """A timeline figure: face, voice (text) and fused probabilities stacked over time, then each modality's
        weight in the fused answer with the uncertain windows shaded, one group of panels per face track (saved
        when ``path``). A single window is drawn across its span. A photo's result is drawn as the photo with its
        face box beside the face's probabilities (:meth:`plot_photo`)."""
        if self.attrs.get("media", {}).get("kind") == "image":
            return self.plot_photo(path, title=title)
        labels = self.labels
        colors = [emotion_color(name) for name in labels]
        tracks, mods = self.tracks, self.modalities
        weights = self.weight_columns
        panels = len(mods) + (1 if weights else 0)
        n_axes = panels * len(tracks)
        size = (10.0, 1.0 + 1.85 * n_axes)
        fig = _figure(size, path)
        axes = fig.subplots(n_axes, 1, sharex=True, squeeze=False)
        for k, track in enumerate(tracks):
            rows = self if track is None else self[self["track"] == track]
            x = ((rows["start"] + rows["end"]) / 2).to_numpy(dtype=np.float64)
            if len(rows) == 1:  # one window: a band over its span, not a single point
                start, end = float(rows["start"].iloc[0]), float(rows["end"].iloc[0])
                x = np.array([start, end]) if end > start else np.array([start - 0.5, start + 0.5])
            for j, modality in enumerate(mods):
                ax = axes[panels * k + j, 0]
                probs = np.nan_to_num(rows.probabilities(modality), nan=0.0)
                if len(rows) == 1:
                    probs = np.repeat(probs, 2, axis=0)
                if len(x):
                    ax.stackplot(x, probs.T, labels=labels, colors=colors[: len(labels)], alpha=0.85)
                name = modality
                absent = np.isnan(rows.probabilities(modality)).any(1)
                if modality == "text" and "text_emotion_words" in rows.columns:  # words the fusion leaves out
                    _shade(ax, rows, x, (rows["text_emotion_words"] == 0).to_numpy(), "white", 0.6)
                    name = "text\n(pale: no\nemotion word)"
                elif modality in ABSENT and absent.all():  # say why the row is empty
                    ax.text(0.5, 0.5, _absent_note(modality, self.attrs), transform=ax.transAxes, ha="center",
                            va="center", color="0.35", fontsize=10)
                elif modality in ABSENT and absent.any():
                    _shade(ax, rows, x, absent, "0.85", 0.6)
                    name = f"{modality}\n(grey: {ABSENT[modality]})"
                ax.set_ylim(0, 1)
                ax.set_ylabel(name if track is None else f"{name}\ntrack {track}")
                ax.margins(x=0)
            if weights:
                _plot_weights(axes[panels * k + len(mods), 0], rows, x, weights, track)
        axes[-1, 0].set_xlabel("time (s)")
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.suptitle(title or f"avemo — {Path(str(self.attrs.get('source', ''))).name}")
        # margins in inches (room for the y labels' lines on the left, the legends on the right) instead of
        # tight_layout, which draws the whole figure once more to measure it
        lines = max(ax.get_ylabel().count("\n") + 1 for ax in axes.flat)
        fig.subplots_adjust(left=(0.5 + 0.17 * lines) / size[0], right=1 - 1.2 / size[0], top=1 - 0.45 / size[1],
                            bottom=0.5 / size[1], hspace=0.15)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
        return fig

    def plot_photo(self, path: str | Path | None = None, *, title: str | None = None):
        """A photo's result: the photo (when its file can still be read) with the face box, beside the face's
        probabilities as bars (saved when ``path``)."""
        import matplotlib

        from avemo.media import read_image

        labels = self.labels
        colors = [emotion_color(name) for name in labels]
        source = Path(str(self.attrs.get("source", "")))
        fig = _figure((9.0, 4.0), path)
        ax_img, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.3]})
        try:
            ax_img.imshow(read_image(source))
        except (AvemoError, OSError):
            ax_img.text(0.5, 0.5, "(photo not readable)", ha="center", va="center", transform=ax_img.transAxes)
        probs = self.probabilities("face")  # one row per face (several with all_faces)
        faces = [i for i in range(len(self)) if not np.isnan(probs[i]).all()]
        several = len(faces) > 1
        palette = matplotlib.colormaps["Set1"].colors
        box_colors = [palette[k % len(palette)] for k in range(len(faces))] if several else ["lime"]
        for k, (_, box) in enumerate(self.boxes.iterrows()):
            x0, y0, x1, y1 = box[["x0", "y0", "x1", "y1"]]
            ax_img.add_patch(matplotlib.patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                                                          color=box_colors[k % len(box_colors)], lw=2))
            if several:
                ax_img.text(x0, y0, f" {int(box['track'])}", color=box_colors[k % len(box_colors)], va="bottom",
                            fontsize=10, fontweight="bold")
        ax_img.set_axis_off()
        if not faces:
            ax_bar.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax_bar.transAxes, color="0.35")
            ax_bar.set_axis_off()
        else:
            y = np.arange(len(labels))[::-1].astype(np.float64)
            height = 0.8 / len(faces)
            for k, i in enumerate(faces):
                shift = (len(faces) - 1) / 2 * height - k * height
                ax_bar.barh(y + shift, probs[i], height=height, alpha=0.85,
                            color=box_colors[k] if several else colors[: len(labels)],
                            label=f"face {self['track'].iloc[i]}" if several else None)
            ax_bar.set_yticks(y, labels)
            ax_bar.set_xlim(0, 1)
            ax_bar.set_xlabel("face probability")
            if several:
                ax_bar.legend(fontsize=8, frameon=False, loc="lower right")
                ax_bar.set_title(", ".join(f"{self['track'].iloc[i]}: {self['label'].iloc[i]}" for i in faces),
                                 fontsize=10)
            else:
                top = int(np.nanargmax(probs[faces[0]]))
                whole = " (no face found: the whole photo read as one)" if self.attrs.get("face_whole_photo") else ""
                ax_bar.set_title(f"{labels[top]} {probs[faces[0]][top]:.2f}{whole}", fontsize=11)
        fig.suptitle(title or f"avemo — {source.name}")
        fig.subplots_adjust(left=0.03, right=0.97, top=0.86, bottom=0.14, wspace=0.25)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
        return fig

    def save_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """JSON with ``metadata``, ``summary`` and ``windows`` (records); also written to ``path`` when given."""
        frame = pd.DataFrame(self).astype(object).where(pd.notna(self), None)
        doc = {"metadata": _jsonable(self.attrs), "summary": self.summary(),
               "windows": frame.to_dict(orient="records")}
        text = json.dumps(doc, indent=indent, default=_default)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_vtt(self, path: str | Path | None = None) -> str:
        """WebVTT subtitles of the timeline (written to ``path`` when given): one cue per window, from midway after
        the previous window's centre to midway before the next one's, with the fused label and what the face and
        the voice say (and the window's words with ``--text``); with several faces, one cue per face, marked.
        Players (VLC, a browser's ``<track>``) show them over the video."""
        lines = ["WEBVTT", ""]
        cues: list[tuple[float, float, str]] = []
        several = len(self.tracks) > 1
        for track in self.tracks:
            rows = self if track is None else self[self["track"] == track]
            starts, ends = rows["start"].to_numpy(dtype=float), rows["end"].to_numpy(dtype=float)
            mids = (starts + ends) / 2
            probs = {m: rows.probabilities(m) for m in ("face", "voice") if m in self.modalities}
            for i in range(len(rows)):
                row = rows.iloc[i]
                if not isinstance(row["label"], str):
                    continue
                begin = starts[0] if i == 0 else (mids[i - 1] + mids[i]) / 2
                end = ends[-1] if i == len(rows) - 1 else (mids[i] + mids[i + 1]) / 2
                parts = [f"{row['label']} {row['confidence']:.2f}" + (" (uncertain)" if row.get("uncertain") else "")]
                for modality, all_p in probs.items():
                    p = all_p[i]
                    if not np.isnan(p).any():
                        parts.append(f"{modality} {EMOTIONS[int(p.argmax())]} {p.max():.2f}")
                text = ("face " + str(track) + ": " if several else "") + " · ".join(parts)
                said = row.get("transcript")
                if isinstance(said, str) and said:
                    text += f"\n“{said}”"
                cues.append((float(begin), float(max(end, begin + 0.001)), text))
        for n, (begin, end, text) in enumerate(sorted(cues, key=lambda c: c[0]), 1):
            lines += [str(n), f"{_vtt_time(begin)} --> {_vtt_time(end)}", text, ""]
        out = "\n".join(lines)
        if path is not None:
            Path(path).write_text(out, encoding="utf-8")
        return out

    @classmethod
    def load_json(cls, path: str | Path) -> EmotionTimeline:
        """Read back what :meth:`save_json` wrote (an :class:`AvemoError` naming the file for anything else)."""
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AvemoError(f"{path}: cannot read it as an avemo timeline JSON ({e})") from e
        if not (isinstance(doc, dict) and isinstance(doc.get("windows"), list)
                and isinstance(doc.get("metadata"), dict)):
            raise AvemoError(f"{path}: not an avemo timeline JSON (expected 'metadata' and a list of 'windows', as "
                             "EmotionTimeline.save_json writes, e.g. timeline.json)")
        out = cls(pd.DataFrame.from_records(doc["windows"]))
        out.attrs.update(doc["metadata"])
        return out


def _vtt_time(seconds: float) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


#: what an empty window of a modality's row means
ABSENT = {"face": "no face", "voice": "no speech"}


def _absent_note(modality: str, attrs: dict[str, Any]) -> str:
    """Why a modality's row is empty in every window: no such track in the file, or nothing found in it."""
    media = attrs.get("media") or {}
    if modality == "voice":
        return "no audio track" if media.get("has_audio") is False else "no speech found (voice activity detection)"
    return "no video track" if media.get("has_video") is False else "no face found"


def _shade(ax: Any, rows: pd.DataFrame, x: np.ndarray, flags: np.ndarray, color: str, alpha: float) -> None:
    """Shade the flagged windows: each is drawn at its centre, so the hop around it."""
    mids = ((rows["start"] + rows["end"]) / 2).to_numpy(dtype=np.float64)
    half = float(np.median(np.diff(mids))) / 2 if len(mids) > 1 else (x[-1] - x[0]) / 2 if len(x) else 0.5
    for mid, flag in zip(mids, flags):
        if flag:
            ax.axvspan(mid - half, mid + half, color=color, alpha=alpha, lw=0)


def _figure(size: tuple[float, float], path: str | Path | None) -> Any:
    """A pyplot figure for display (plt.show, notebooks) when ``path`` is None; for a file a bare Figure on the
    Agg canvas, no pyplot (its import and global state: 0.2 s of a CLI run)."""
    if path is None:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=size)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _plot_weights(ax: Any, rows: pd.DataFrame, x: np.ndarray, weights: list[str], track: Any) -> None:
    """Each modality's weight in the fused answer, stacked; uncertain windows shaded grey."""
    colors = {"weight_face": "#1f77b4", "weight_voice": "#ff7f0e", "weight_text": "#2ca02c"}
    w = np.nan_to_num(rows[weights].to_numpy(dtype=np.float64), nan=0.0)
    if len(rows) == 1:
        w = np.repeat(w, 2, axis=0)
    names = [c.removeprefix("weight_") for c in weights]
    if len(x):
        ax.stackplot(x, w.T, labels=names, colors=[colors.get(c, "#7f7f7f") for c in weights], alpha=0.85)
    if "uncertain" in rows.columns:
        _shade(ax, rows, x, rows["uncertain"].astype(bool).to_numpy(), "grey", 0.35)
    ax.set_ylim(0, 1)
    ax.set_ylabel("weights" if track is None else f"weights\ntrack {track}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="grey: uncertain", title_fontsize=7)
    ax.margins(x=0)


def _event_columns(text: bool = False) -> list[str]:
    base = ["start", "end", "face", "speech", "speech_fraction", "source"]
    probs = [c for m in (*MODALITIES, "smoothed") for c in prob_columns(m)]
    words = [*prob_columns("text"), "transcript", "text_emotion_words", "weight_text"] if text else []
    return base + probs + ["label", "confidence", "latency_ms", "uncertain", "weight_face", "weight_voice"] + words


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(attrs, default=_default))

"""The analysis result: a pandas DataFrame, one row per time window, with metadata in ``attrs``.

Columns: ``start``, ``end`` (seconds), ``face`` and ``speech`` (found in the window), ``source``
(``"av"``, ``"face"``, ``"voice"`` or ``"none"``: which modalities the fused row rests on),
``face_<emotion>``, ``voice_<emotion>`` and ``fused_<emotion>`` probabilities over
:data:`avemo.labels.EMOTIONS` (NaN where that modality is absent), ``label`` and ``confidence``
(the fused top class). With several faces, a ``track`` column says which face a row belongs to.
``attrs`` holds the source file, the sampling, and the names and versions of the models used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo.labels import EMOTIONS

MODALITIES: tuple[str, ...] = ("face", "voice", "fused")


def prob_columns(modality: str, labels: Sequence[str] = EMOTIONS) -> list[str]:
    """The probability columns of one modality, e.g. ``face_happy``."""
    return [f"{modality}_{name}" for name in labels]


class EmotionTimeline(pd.DataFrame):
    """Emotions over time for one input (and one face track): a DataFrame with ``summary`` and ``plot``."""

    @property
    def _constructor(self) -> type[EmotionTimeline]:
        return EmotionTimeline

    @property
    def labels(self) -> tuple[str, ...]:
        """The emotion classes of the probability columns."""
        return tuple(self.attrs.get("labels", EMOTIONS))

    def probabilities(self, modality: str = "fused") -> np.ndarray:
        """The (windows, classes) probability matrix of one modality (NaN rows where absent)."""
        return self[prob_columns(modality, self.labels)].to_numpy(dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """Per-clip emotion distribution (mean fused probability over covered windows), dominant emotion,
        share of windows per top label, and how much of the clip had a face and speech."""
        labels = self.labels
        covered = self[self["source"] != "none"] if len(self) else self
        out: dict[str, Any] = {
            "source": self.attrs.get("source"),
            "duration": float(self["end"].max()) if len(self) else 0.0,
            "windows": int(len(self)),
            "face_coverage": float(self["face"].mean()) if len(self) else 0.0,
            "speech_coverage": float(self["speech"].mean()) if len(self) else 0.0,
        }
        for modality in MODALITIES:
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
        shares = covered["label"].value_counts(normalize=True) if len(covered) else pd.Series(dtype=float)
        out["label_share"] = {str(k): round(float(v), 4) for k, v in shares.items()}
        return out

    def plot(self, path: str | Path | None = None, *, title: str | None = None):
        """A timeline figure: face, voice and fused probabilities stacked over time (saved when ``path``)."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = self.labels
        colors = plt.get_cmap("tab10").colors
        fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True)
        mids = ((self["start"] + self["end"]) / 2).to_numpy(dtype=np.float64)
        for ax, modality in zip(axes, MODALITIES, strict=True):
            probs = np.nan_to_num(self.probabilities(modality), nan=0.0)
            if len(mids):
                ax.stackplot(mids, probs.T, labels=labels, colors=colors[: len(labels)], alpha=0.85)
            ax.set_ylim(0, 1)
            ax.set_ylabel(modality)
            ax.margins(x=0)
        axes[-1].set_xlabel("time (s)")
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.suptitle(title or f"avemo — {Path(str(self.attrs.get('source', ''))).name}")
        fig.tight_layout()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig

    def to_json(self, path: str | Path | None = None, **kwargs: Any) -> str | None:  # type: ignore[override]
        """JSON with ``metadata``, ``summary`` and ``windows`` (records); written to ``path`` when given."""
        frame = pd.DataFrame(self).astype(object).where(pd.notna(self), None)
        doc = {"metadata": _jsonable(self.attrs), "summary": self.summary(),
               "windows": frame.to_dict(orient="records")}
        text = json.dumps(doc, indent=kwargs.get("indent", 2), default=_default)
        if path is None:
            return text
        Path(path).write_text(text + "\n")
        return None

    @classmethod
    def read_json(cls, path: str | Path) -> EmotionTimeline:
        """Read back what :meth:`to_json` wrote."""
        doc = json.loads(Path(path).read_text())
        out = cls(pd.DataFrame.from_records(doc["windows"]))
        out.attrs.update(doc["metadata"])
        return out


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(attrs, default=_default))

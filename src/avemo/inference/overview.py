"""One picture of a whole folder run: a strip per file (per face with ``--all-faces``) coloured by each
window's fused emotion over time, uncertain windows paler, so a glance shows which emotions come where in which
files. ``avemo analyze`` on two files or more writes it as ``overview.png`` beside ``results.csv``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo.labels import EMOTIONS, emotion_color

MOST = 60  #: strips drawn at most (the rest are named in the title)


@dataclass
class Strip:
    """One file's (or face's) windows: their spans, fused labels and whether each is uncertain."""

    name: str
    starts: np.ndarray
    ends: np.ndarray
    labels: list[Any]
    uncertain: np.ndarray


@dataclass
class Overview:
    """The strips of a folder run; :meth:`plot` draws them (picklable, so the plot helper can draw it)."""

    strips: list[Strip] = field(default_factory=list)

    @classmethod
    def from_folders(cls, named: list[tuple[str, Path]]) -> Overview:
        """From each analysed file's ``timeline.csv`` (its display name, its output folder); photos and files
        without a timeline are left out."""
        strips = []
        for name, folder in named:
            path = folder / "timeline.csv"
            if not path.is_file():
                continue
            frame = pd.read_csv(path)
            if frame.empty or (frame["end"] <= frame["start"]).all():  # a photo: no time to draw
                continue
            groups = frame.groupby("track") if "track" in frame.columns and frame["track"].nunique() > 1 else [
                (None, frame)]
            for track, rows in groups:
                uncertain = rows["uncertain"].fillna(False).astype(bool).to_numpy() if "uncertain" in rows else (
                    np.zeros(len(rows), bool))
                labels = [v if isinstance(v, str) else None for v in rows["label"]]
                strips.append(Strip(name if track is None else f"{name} (face {int(track)})",
                                    rows["start"].to_numpy(float), rows["end"].to_numpy(float), labels, uncertain))
        return cls(strips)

    def plot(self, path: str | Path | None = None) -> Any:
        """The figure: a row per strip, each window drawn between the midpoints to its neighbours (as the
        timeline plot and the service's page draw them); saved when ``path``."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        shown = self.strips[:MOST]
        height = 1.2 + 0.28 * max(1, len(shown))
        fig = Figure(figsize=(10.0, height))
        ax = fig.subplots()
        longest = max((float(s.ends.max()) for s in shown), default=1.0)
        used: set[str] = set()
        for row, strip in enumerate(shown):
            mids = (strip.starts + strip.ends) / 2
            for i, label in enumerate(strip.labels):
                if label is None:
                    continue
                begin = strip.starts[0] if i == 0 else (mids[i - 1] + mids[i]) / 2
                end = strip.ends[-1] if i == len(mids) - 1 else (mids[i] + mids[i + 1]) / 2
                ax.barh(row, max(end - begin, 1e-3), left=begin, height=0.8, color=emotion_color(label),
                        alpha=0.35 if strip.uncertain[i] else 0.95, linewidth=0)
                used.add(label)
        ax.set_yticks(range(len(shown)), [s.name[:48] for s in shown], fontsize=8)
        ax.set_ylim(len(shown) - 0.5, -0.5)
        ax.set_xlim(0, longest)
        ax.set_xlabel("time (s)")
        more = len(self.strips) - len(shown)
        ax.set_title("fused emotion over time, file by file (pale: uncertain)"
                     + (f"; {more} more in results.csv" if more > 0 else ""), fontsize=10)
        ax.legend(handles=[Patch(color=emotion_color(e), label=e) for e in EMOTIONS if e in used],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.subplots_adjust(left=3.2 / 10.0, right=1 - 1.2 / 10.0, top=1 - 0.45 / height, bottom=0.55 / height)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
        return fig

"""What live analysis emits: one :class:`LiveEvent` per label, and a :class:`LiveSummary` at the end
(``EmotionTimeline.from_events`` turns events into the same table as offline analysis)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from avemo.labels import EMOTIONS


@dataclass(frozen=True)
class LiveEvent:
    """One emitted label. Probabilities are dicts over :data:`EMOTIONS` (None where absent);
    ``label``/``confidence`` come from ``smoothed`` (None when neither a face nor speech is there); ``weights``:
    how much the face and the voice counted in ``fused``; ``uncertain``: the smoothed label's probability is under
    one half."""

    time: float  #: media time, seconds
    label: str | None
    confidence: float | None
    source: str  #: "av", "face", "voice", "text" (words alone) or "none"
    face: dict[str, float] | None
    voice: dict[str, float] | None
    fused: dict[str, float] | None
    smoothed: dict[str, float] | None
    latency_ms: float  #: wall time from capture to emission
    speech_fraction: float | None = None
    weights: dict[str, float] | None = None
    uncertain: bool | None = None
    text: dict[str, float] | None = None  #: the emotions of the latest utterance's words (live ``text``)
    transcript: str | None = None  #: those words, while they count (``window`` s after the utterance)
    text_emotion_words: int | None = None  #: how many of them state a feeling (none: the text sits out)
    #: live ``all_faces``: every face of the frame, by track: ``track``, ``main`` (the face of ``face``), ``box``
    #: (x0, y0, x1, y1 as fractions of the frame's width and height), ``label`` and ``confidence`` (the track's
    #: own moving average) and ``face`` (this frame's probabilities); ``[]`` when the event has no face
    faces: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LiveSummary:
    """What a live run did; ``latency_ms`` has ``median``, ``p95``, ``max`` and ``mean``."""

    source: str
    events: int
    labelled: int
    frames: int  #: frames the source delivered
    processed: int  #: frames run through the face path
    dropped: int  #: sampling instants missed because the consumer was busy
    voice_steps: int
    media_seconds: float
    wall_seconds: float
    speed: float
    latency_ms: dict[str, float]
    stage_ms: dict[str, float]  #: mean milliseconds per call of each stage
    label_share: dict[str, float]
    interrupted: bool = False
    utterances: int | None = None  #: utterances sent to the transcriber (live ``text``)
    utterances_dropped: int | None = None  #: of those, dropped while it was busy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lat = self.latency_ms
        lines = [f"{self.events} events ({self.labelled} labelled) over {self.media_seconds:.2f} s of media "
                 f"in {self.wall_seconds:.2f} s (speed {self.speed:g}x)"]
        if lat:
            lines.append(f"latency frame->label: median {lat['median']:.0f} ms, p95 {lat['p95']:.0f} ms, "
                         f"max {lat['max']:.0f} ms")
        lines.append(f"frames: {self.frames} delivered, {self.processed} analysed, {self.dropped} dropped; "
                     f"voice steps: {self.voice_steps}" + ("" if self.utterances is None else
                                                           f"; utterances transcribed: {self.utterances}"
                                                           f" ({self.utterances_dropped} dropped)"))
        if self.stage_ms:
            lines.append("stages (mean ms): " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items()))
        return "\n".join(lines)


def latency_stats(values: Iterable[float]) -> dict[str, float]:
    """median, p95, max and mean of latencies (empty dict for none)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {}
    return {"median": round(float(np.median(arr)), 2), "p95": round(float(np.percentile(arr, 95)), 2),
            "max": round(float(arr.max()), 2), "mean": round(float(arr.mean()), 2), "n": int(arr.size)}


def as_dict(p: np.ndarray | None) -> dict[str, float] | None:
    return None if p is None else {name: round(float(v), 5) for name, v in zip(EMOTIONS, p)}

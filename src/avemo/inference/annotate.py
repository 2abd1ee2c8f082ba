"""Draw an analysis onto its video (the face box, the current label and probability bars; audio kept) or its
photo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from avemo.inference.result import EmotionTimeline
from avemo.labels import EMOTIONS, emotion_rgb

_COLOURS = {name: emotion_rgb(name) for name in EMOTIONS}  # RGB, one per emotion


def annotate_video(source: str | Path, timeline: EmotionTimeline, out_path: str | Path, *,
                   decode_side: int | None = None) -> Path:
    """Write ``out_path`` (mp4): every frame of ``source`` with the face box and the fused emotion of the
    window around it (of the face seen longest, when several faces were followed); the source's audio is kept."""
    from avemo.media import iter_frames, probe, write_video

    info = probe(source)
    side = decode_side or int(timeline.attrs.get("config", {}).get("decode_side", 720))
    if len(timeline.tracks) > 1:
        main = timeline.groupby("track")["face"].sum().idxmax()
        timeline = timeline[timeline["track"] == main]
    table = timeline.boxes
    if len(timeline.tracks) == 1 and timeline.tracks[0] is not None:
        table = table[table["track"] == timeline.tracks[0]]
    boxes = table[["time", "x0", "y0", "x1", "y1"]].to_numpy(dtype=np.float32)
    centres = ((timeline["start"] + timeline["end"]) / 2).to_numpy(dtype=np.float64)
    fused = np.nan_to_num(timeline.probabilities("fused"))

    def frames() -> Iterator[np.ndarray]:
        for fr in iter_frames(source, None, max_side=side):
            image = fr.image.copy()
            if len(boxes):
                k = int(np.abs(boxes[:, 0] - fr.time).argmin())
                if abs(boxes[k, 0] - fr.time) <= 0.5:
                    x0, y0, x1, y1 = (int(v) for v in boxes[k, 1:])
                    cv2.rectangle(image, (x0, y0), (x1, y1), (60, 230, 90), 2)
            if len(centres):
                w = int(np.abs(centres - fr.time).argmin())
                _draw_panel(image, fused[w], timeline["label"].iloc[w], fr.time)
            yield image

    return write_video(out_path, frames(), fps=float(info.fps or 25.0), audio_from=source)


def annotate_photo(source: str | Path, timeline: EmotionTimeline, out_path: str | Path, *,
                   min_side: int = 360) -> Path:
    """Write ``out_path`` (an image; PNG for ``.png``): the photo, enlarged to ``min_side`` pixels on its shorter
    side if smaller, with every face's box and the first face's fused emotion as bars."""
    from avemo.media import read_image

    image = read_image(source)
    factor = max(1.0, min_side / min(image.shape[:2]))
    if factor > 1.0:
        image = cv2.resize(image, (round(image.shape[1] * factor), round(image.shape[0] * factor)),
                           interpolation=cv2.INTER_CUBIC)
    for x0, y0, x1, y1 in timeline.boxes[["x0", "y0", "x1", "y1"]].to_numpy(dtype=np.float64) * factor:
        cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), (60, 230, 90), 2)
    if len(timeline):
        _draw_panel(image, np.nan_to_num(timeline.probabilities("fused")[0]), timeline["label"].iloc[0], None)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{out}: cannot be written")
    return out


def _draw_panel(image: np.ndarray, probs: np.ndarray, label: object, t: float | None) -> None:
    """Label, time (``None``: none, a photo) and one bar per emotion in the top-left corner (in place)."""
    h = image.shape[0]
    scale = max(0.4, h / 1000)
    row = int(22 * scale / 0.5)
    x0, y0, bar_w = 8, 8, int(120 * scale / 0.5)
    panel_h = row * (len(EMOTIONS) + 1) + 8
    overlay = image.copy()
    cv2.rectangle(overlay, (x0 - 4, y0 - 4), (x0 + bar_w + int(90 * scale / 0.5), y0 + panel_h), (0, 0, 0), -1)
    cv2.addWeighted(overlay, 0.45, image, 0.55, 0, dst=image)
    text = f"{label if isinstance(label, str) else '-'}" + ("" if t is None else f"  {t:5.1f}s")
    cv2.putText(image, text, (x0, y0 + row - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    for i, name in enumerate(EMOTIONS):
        y = y0 + row * (i + 1)
        length = int(bar_w * float(probs[i]))
        cv2.rectangle(image, (x0, y + 4), (x0 + length, y + row - 4), _COLOURS[name], -1)
        cv2.putText(image, name, (x0 + bar_w + 4, y + row - 6), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8,
                    (255, 255, 255), 1, cv2.LINE_AA)

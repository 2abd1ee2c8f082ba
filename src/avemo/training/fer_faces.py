"""FER-2013 faces as a camera would deliver them, and what MediaPipe sees in them (cached).

Every FER-2013 face (48×48 grey) is *rendered* into a 256×256 frame: upscaled to 160 px (bicubic) and
framed by 48 px of replicated border, so MediaPipe's detector sees a whole face with some context, then
changed as one condition of a talking-face video would change it (:data:`VARIANTS`). MediaPipe's
FaceLandmarker (image mode, the product's thresholds) then gives landmarks, 52 blendshapes and head pose,
and the face network's 48×48 crop is cut from the rendered frame by :func:`avemo.faces.align_face` as the
analyzer cuts it. A face MediaPipe misses keeps NaN features and gets the crop of its known box (the
160 px square, as a detector's box fallback would give it).

``clean`` is the photo itself: its crop is the original 48×48 image (the corpus's own protocol); only the
blendshapes come from the rendered frame.

Results are cached per (split, variant) under ``cache_root()/fer2013_faces/`` as ``.npz`` with
``y`` (BASIC7 indices), ``found`` (bool), ``blendshapes`` (N, 52), ``pose`` (N, 3), ``landmarks``
(N, 478, 3, float16, frame pixels), ``crops`` (N, 48, 48 uint8).

Run (resumable, one split-variant at a time): ``python benchmarks/face_crossdomain.py --extract train:clean
public_test:h264 ...`` (``--limit N``: an evenly spaced subset of N faces, cached apart).
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from avemo.config import cache_root

FRAME, FACE = 256, 160
PAD = (FRAME - FACE) // 2
SPLITS = {"train": 0, "public_test": 1, "private_test": 2}

#: The conditions, each a function of the 256×256 rendered frame (uint8 grey) and a seeded generator.
VARIANTS: dict[str, str] = {
    "clean": "the photo itself (the corpus's protocol); blendshapes from the upscaled frame",
    "h264": "the rendered frames encoded as one H.264 video (libx264, CRF 35, yuv420p), decoded back",
    "blur": "Gaussian blur, sigma 2.5 px of the 160 px face (about 0.75 px at 48), as defocus or motion",
    "lowres": "the face at 24 px (a small face in a wide shot), upscaled back, then JPEG quality 40",
    "rotate": "the frame rotated by ±(15–30)° (a tilted head); the analyzer's alignment must undo it",
    "lowlight": "gamma 2.0, gain 0.35, sensor noise sigma 3 grey levels, 8-bit again (a dim room)",
    "mouth_occluded": "the lower face (rows 0.66–1 of the crop, columns 0.2–0.8) one grey: hand, microphone",
    "eyes_occluded": "a grey band over both eyes (rows 0.29–0.50): glasses glare, hair, a hand",
}


def render(face48: np.ndarray) -> np.ndarray:
    """The 256×256 frame of one 48×48 face: upscaled to 160 px, 48 px of replicated border around."""
    big = cv2.resize(face48, (FACE, FACE), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)


def _h264(frames: list[np.ndarray], crf: int = 35) -> list[np.ndarray]:
    """Grey frames through a real H.264 encode/decode (PyAV, libx264, yuv420p); same order back."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = FRAME, FRAME, "yuv420p"
        st.options = {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")
            for pkt in st.encode(vf.reformat(format="yuv420p")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    buf.seek(0)
    with av.open(buf) as inp:
        back = [fr.to_ndarray(format="gray") for fr in inp.decode(video=0)]
    if len(back) != len(frames):
        raise RuntimeError(f"H.264 round trip gave {len(back)} frames for {len(frames)}")
    return back


def apply_variant(faces48: np.ndarray, variant: str, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Rendered frames (256×256 uint8 grey) of ``faces48`` under ``variant``, and each face's box angle.

    The second value is the rotation applied (degrees, 0 for all but ``rotate``).
    """
    from avemo.training.fer_video import occlude_eyes, occlude_mouth

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    rng = np.random.default_rng(seed)
    angles = np.zeros(len(faces48))
    if variant == "mouth_occluded":
        return [render(occlude_mouth(f)) for f in faces48], angles
    if variant == "eyes_occluded":
        return [render(occlude_eyes(f)) for f in faces48], angles
    frames = [render(f) for f in faces48]
    if variant == "h264":
        return _h264(frames), angles
    out = []
    for i, fr in enumerate(frames):
        if variant == "blur":
            fr = cv2.GaussianBlur(fr, (0, 0), 2.5)
        elif variant == "lowres":
            small = cv2.resize(faces48[i], (24, 24), interpolation=cv2.INTER_AREA)
            fr = render(cv2.resize(small, (48, 48), interpolation=cv2.INTER_LINEAR))
            ok, buf = cv2.imencode(".jpg", fr, [cv2.IMWRITE_JPEG_QUALITY, 40])
            fr = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else fr
        elif variant == "rotate":
            angles[i] = rng.uniform(15, 30) * (1 if rng.random() < 0.5 else -1)
            m = cv2.getRotationMatrix2D((FRAME / 2, FRAME / 2), angles[i], 1.0)
            fr = cv2.warpAffine(fr, m, (FRAME, FRAME), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        elif variant == "lowlight":
            x = 255.0 * (fr / 255.0) ** 2.0 * 0.35 + rng.normal(0, 3.0, fr.shape)
            fr = np.clip(np.round(x), 0, 255).astype(np.uint8)
        out.append(fr)
    return out, angles


def box_crop(frame: np.ndarray, angle: float = 0.0) -> np.ndarray:
    """The 48×48 crop of the face's known box (what a box-only fallback would cut; rotation not undone)."""
    return cv2.resize(frame[PAD:PAD + FACE, PAD:PAD + FACE], (48, 48), interpolation=cv2.INTER_AREA)


def extract(split: str, variant: str, *, data: dict[str, np.ndarray] | None = None, limit: int | None = None,
            log: Any = print) -> dict[str, np.ndarray]:
    """MediaPipe features and network crops of one split under one variant (cached; see the module doc)."""
    from avemo.faces import FaceLandmarker, align_face
    from avemo.training.fer import load_fer_arrays

    path = cache_root() / "fer2013_faces" / f"{split}_{variant}{'' if limit is None else f'_{limit}'}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    data = data or load_fer_arrays()
    sel = data["split"] == SPLITS[split]
    x, y = data["x"][sel], data["y"][sel]
    if limit is not None and limit < len(x):  # evenly spaced, so every class keeps its share
        keep = np.unique(np.linspace(0, len(x) - 1, limit).round().astype(int))
        x, y = x[keep], y[keep]
    n = len(x)
    out = {"y": y, "found": np.zeros(n, bool), "blendshapes": np.full((n, 52), np.nan, np.float32),
           "pose": np.full((n, 3), np.nan, np.float32), "landmarks": np.full((n, 478, 3), np.nan, np.float16),
           "crops": np.zeros((n, 48, 48), np.uint8)}
    t0 = time.time()
    with FaceLandmarker(mode="image", max_side=None, min_confidence=0.5) as lm:
        for start in range(0, n, 500):
            chunk = x[start:start + 500]
            frames, angles = apply_variant(chunk, variant, seed=start + 7919 * list(VARIANTS).index(variant))
            for j, fr in enumerate(frames):
                i = start + j
                faces = lm.detect(cv2.cvtColor(fr, cv2.COLOR_GRAY2RGB))
                if faces and faces[0].blendshapes is not None:
                    f = faces[0]
                    out["found"][i] = True
                    out["blendshapes"][i] = f.blendshapes
                    out["pose"][i] = f.pose if f.pose is not None else np.nan
                    out["landmarks"][i] = f.landmarks.astype(np.float16)
                    out["crops"][i] = align_face(fr, f, 48, grey=True)
                else:
                    out["crops"][i] = box_crop(fr, angles[j])
                if variant == "clean":
                    out["crops"][i] = chunk[j]
            log(f"{split}:{variant} {min(start + 500, n)}/{n}, found {out['found'][:start + 500].mean():.3f}, "
                f"{time.time() - t0:.0f}s")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(path)
    return out

"""More conditions of capture for the robustness report: babble, reverberation and a narrow band for voices; blur,
low light, JPEG and H.264 compression, occluded eyes or mouth and a turned head for face crops.

Every function is deterministic given its ``seed``; audio is float32 mono in [-1, 1], faces are grey uint8
``(N, H, W)`` crops (FER-2013 framing: eyes about 40 % down, mouth about 75 %). See also
:mod:`avemo.robustness.corruptions` (white noise at an SNR, gain, telephone band, lossy codecs, occlusion).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["babble", "blur", "h264", "jpeg", "low_light", "narrowband", "occlude_band", "reverberate", "turn_head"]


# ---- voice ---------------------------------------------------------------------------------------------------

def babble(talkers: Sequence[np.ndarray], length: int, *, n: int = 6, seed: int = 0) -> np.ndarray:
    """Babble noise of ``length`` samples: ``n`` of ``talkers`` (other people's speech), each at the same level,
    looped from a random offset and summed (a crowd of ``n`` voices)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(length, dtype=np.float64)
    for k in rng.choice(len(talkers), size=min(n, len(talkers)), replace=False):
        x = np.asarray(talkers[int(k)], dtype=np.float64)
        x = x / (np.sqrt(np.mean(x**2)) + 1e-9)
        out += np.roll(np.resize(x, length), int(rng.integers(0, max(1, x.size))))
    return out.astype(np.float32)


def room_response(rt60: float, sample_rate: int, *, seed: int = 0, direct: float = 1.0) -> np.ndarray:
    """A synthetic room impulse response: a direct path, then exponentially decaying noise reaching -60 dB at
    ``rt60`` seconds (Polack's statistical model; no measured responses are available here)."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000): -60 dB at rt60
    tail[: int(0.002 * sample_rate)] = 0.0  # the first reflections arrive after ~2 ms
    h = np.concatenate([[direct], tail * 0.08])
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def reverberate(wave: np.ndarray, sample_rate: int, rt60: float, *, seed: int = 0) -> np.ndarray:
    """``wave`` in a room with reverberation time ``rt60`` (same length and energy as the input)."""
    from scipy.signal import fftconvolve

    x = np.asarray(wave, dtype=np.float32)
    y = fftconvolve(x, room_response(rt60, sample_rate, seed=seed))[: x.size]
    gain = np.sqrt(np.mean(x**2) / (np.mean(y**2) + 1e-12))
    return np.clip(y * gain, -1.0, 1.0).astype(np.float32)


def narrowband(wave: np.ndarray, sample_rate: int, band_rate: int = 8000) -> np.ndarray:
    """``wave`` resampled to ``band_rate`` and back (everything above ``band_rate / 2`` lost, as in narrowband
    telephony and old recorders)."""
    from scipy.signal import resample_poly

    x = np.asarray(wave, dtype=np.float64)
    y = resample_poly(resample_poly(x, band_rate, sample_rate), sample_rate, band_rate)
    return np.clip(np.pad(y, (0, max(0, x.size - y.size)))[: x.size], -1.0, 1.0).astype(np.float32)


# ---- faces ---------------------------------------------------------------------------------------------------

def _each(crops: np.ndarray, fn) -> np.ndarray:
    return np.stack([fn(np.ascontiguousarray(c)) for c in np.asarray(crops)]) if len(crops) else np.asarray(crops)


def blur(crops: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (defocus, motion at low shutter speed)."""
    import cv2

    return _each(crops, lambda c: cv2.GaussianBlur(c, (0, 0), sigma, borderType=cv2.BORDER_REFLECT))


def low_light(crops: np.ndarray, light: float, *, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Faces under ``light`` times the light (0-1: linear intensity scaled, sRGB-like gamma 2.2), with sensor
    noise of ``noise`` grey levels (std) added after, then 8-bit quantisation."""
    x = (np.asarray(crops, dtype=np.float64) / 255.0) ** 2.2 * light
    y = 255.0 * x ** (1 / 2.2)
    if noise:
        y = y + np.random.default_rng(seed).normal(0.0, noise, y.shape)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def jpeg(crops: np.ndarray, quality: int) -> np.ndarray:
    """Each crop JPEG-compressed at ``quality`` (1-100) and decoded."""
    import cv2

    def one(c: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)

    return _each(crops, one)


def h264(crops: np.ndarray, crf: int) -> np.ndarray:
    """Each crop as an intra-coded H.264 frame (libx264, ``crf``, yuv420p) and decoded: the artefacts of a video
    call or a compressed upload (every frame a key frame, since the crops are unrelated pictures)."""
    import av

    x = np.asarray(crops)
    if not len(x):
        return x
    h, w = x.shape[1:]
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
    codec.options = {"crf": str(int(crf)), "preset": "medium", "keyint": "1", "tune": "stillimage"}
    from fractions import Fraction

    codec.time_base = Fraction(1, 25)
    packets = []
    for i, c in enumerate(x):
        img = np.pad(c, ((0, h % 2), (0, w % 2)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.repeat(img[..., None], 3, axis=2), format="rgb24")
        frame.pts = i
        packets += codec.encode(frame)
    packets += codec.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    out = []
    for pkt in packets:
        out += [f.to_ndarray(format="gray")[:h, :w] for f in decoder.decode(pkt)]
    out += [f.to_ndarray(format="gray")[:h, :w] for f in decoder.decode(None)]
    if len(out) != len(x):
        raise RuntimeError(f"H.264 round trip gave {len(out)} frames for {len(x)} crops")
    return np.stack(out).astype(np.uint8)


#: rows (fractions of the crop height) of the bands that ``occlude_band`` covers
BANDS = {"eyes": (0.22, 0.50), "mouth": (0.62, 0.92)}


def occlude_band(crops: np.ndarray, part: str, *, value: int | None = None) -> np.ndarray:
    """Cover the eyes (sunglasses) or the mouth (a mask, a hand) with a full-width band of ``value`` (default:
    each crop's mean grey)."""
    top, bottom = BANDS[part]
    out = np.array(crops, copy=True)
    h = out.shape[1]
    r0, r1 = int(round(top * h)), int(round(bottom * h))
    for c in out:
        c[r0:r1] = int(c.mean()) if value is None else value
    return out


def turn_head(crops: np.ndarray, yaw: float = 0.0, roll: float = 0.0, *, focal: float = 1.5) -> np.ndarray:
    """The face plane turned by ``yaw`` degrees about the vertical axis (a perspective warp, pinhole camera of
    ``focal`` crop widths) and tilted by ``roll`` degrees in the image plane. A planar approximation: a real head
    turn also hides the far half of the face."""
    import cv2

    def one(c: np.ndarray) -> np.ndarray:
        h, w = c.shape
        f = focal * w
        cx, cy = w / 2.0, h / 2.0
        a = np.deg2rad(yaw)
        pts = np.array([[-cx, -cy], [cx, -cy], [cx, cy], [-cx, cy]], dtype=np.float64)
        xs, zs = pts[:, 0] * np.cos(a), pts[:, 0] * np.sin(a)
        proj = np.stack([f * xs / (f + zs), f * pts[:, 1] / (f + zs)], axis=1)
        src = (pts + [cx, cy]).astype(np.float32)
        dst = (proj + [cx, cy]).astype(np.float32)
        m = cv2.getPerspectiveTransform(src, dst)
        r = cv2.getRotationMatrix2D((cx, cy), roll, 1.0)
        m = np.vstack([r, [0, 0, 1]]) @ m
        return cv2.warpPerspective(c, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    return _each(crops, one)

"""The face + voice + text system's text module on real CARER sentences, its voice front end on real
RAVDESS speech, and the Self-ONN system's key-frame input on real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avemo.models.registry import create_model
from avemo.models.systems.akturk2024_onn import key_frame_input
from avemo.models.systems.almulla2024_fvt import CARER_LABELS, carer_split, prepare_voice


@pytest.fixture(scope="module")
def carer(data: Path) -> Path:
    return data / "text-emotion-carer"


def test_carer_split_maps_labels_and_counts_love(carer: Path) -> None:
    texts, labels, left_out = carer_split(carer, "val")
    assert len(texts) + left_out == 2000 and left_out > 0  # love has no canonical class
    assert set(labels) == set(CARER_LABELS)


def test_text_module_learns_carer_and_fuses(carer: Path) -> None:
    model = create_model("almulla2024_fvt", face_widths=(4,), voice_widths=(4,), text_features=2**14)
    texts, labels, _ = carer_split(carer, "train")
    model.text.fit(texts[:4000], labels[:4000])
    tx, ty, _ = carer_split(carer, "test")
    pred = np.array(model.text.labels)[model.text.predict_proba(tx).argmax(1)]
    accuracy = float(np.mean(pred == np.array(ty)))
    assert accuracy > 0.7, accuracy  # a subset of train, for speed; the full run is in the report
    with torch.no_grad():
        out = model(text=tx[:8])
    # text alone: the fused answer is the text classifier's, on the system's label set
    assert [model.labels[i] for i in out["logits"].argmax(1)] == list(pred[:8])
    assert torch.allclose(out["attention"]["fusion_weights"], torch.tensor([0.0, 0.0, 1.0]))
    full = model.fusion.weights()
    torch.testing.assert_close(full, torch.tensor([0.55, 0.38, 0.07]))


def test_voice_front_end_on_real_speech(data: Path) -> None:
    from avemo.media.audio import read_audio

    wave = read_audio(data / "ravdess-speech-16k" / "Actor_01" / "03-01-03-01-01-01-01.flac")
    mel = prepare_voice(wave)
    assert mel.shape == (64, 1 + len(wave) // 160) and np.isfinite(mel).all()
    model = create_model("almulla2024_fvt", face_widths=(4,), voice_widths=(4, 8)).eval()
    with torch.no_grad():
        out = model(audio=torch.from_numpy(mel)[None])
    assert out["logits"].shape == (1, 8)


def test_key_frame_input_on_real_faces(data: Path) -> None:
    paths = sorted((data / "fer2013" / "train" / "happy").glob("Training_*.jpg"))[:6]
    frames = [cv2.imread(str(p))[..., ::-1].copy() for p in paths]  # RGB crops
    x = key_frame_input(frames, k=2, size=48)
    assert x.shape == (2, 1, 48, 48) and 0 <= float(x.min()) and float(x.max()) <= 1
    model = create_model("akturk2024_onn_face", widths=(4, 8), fused_dim=8, video_frames=2).eval()
    with torch.no_grad():
        assert model(video=x[None])["logits"].shape == (1, 8)

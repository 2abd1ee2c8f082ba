"""Losses: cross-entropy with smoothing, triplet, the emotion-constrained triplet, multitask, soft-HGR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avemo.labels import EMOTIONS, similarity_matrix
from avemo.losses import (
    UncertaintyWeighting,
    cross_entropy,
    emotion_constrained_triplet,
    multitask_loss,
    soft_hgr_loss,
    triplet_loss,
)

H, S, SU = EMOTIONS.index("happy"), EMOTIONS.index("sad"), EMOTIONS.index("surprised")


def test_cross_entropy_label_smoothing() -> None:
    logits = torch.tensor([[10.0, -10.0]])
    y = torch.tensor([0])
    assert cross_entropy(logits, y) < 1e-6
    assert cross_entropy(logits, y, label_smoothing=0.2) > 1.0  # smoothing penalises over-confidence


def test_triplet_loss_zero_when_separated_positive_when_mixed() -> None:
    y = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[1.0, 0.0], [0.99, 0.01], [-1.0, 0.0], [-0.99, -0.01]])
    assert triplet_loss(apart, y, margin=0.3) == 0
    mixed = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.99, 0.01], [-0.99, 0.01]])
    assert triplet_loss(mixed, y, margin=0.3) > 1.0
    assert triplet_loss(apart, torch.tensor([0, 1, 2, 3])) == 0  # no positives: nothing to learn


def test_similarity_matrix_orders_emotions() -> None:
    sim = similarity_matrix(EMOTIONS)
    assert sim[H, SU] > sim[H, S]  # happy is closer to surprised than to sad


def test_emotion_constraint_penalises_opposed_emotions_closer_than_similar_ones() -> None:
    y = torch.tensor([H, H, S, SU])
    # good: surprised near happy, sad far; bad: the other way round
    good = torch.tensor([[1.0, 0.0], [1.0, 0.05], [-1.0, 0.0], [0.6, 0.8]])
    bad = torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.6, 0.8], [-1.0, 0.0]])
    kw = {"margin": 0.0, "constraint_margin": 0.5}
    assert emotion_constrained_triplet(bad, y, **kw) > emotion_constrained_triplet(good, y, **kw) + 0.1
    # only the constraint tells them apart: the plain triplet loss is the same
    assert triplet_loss(bad, y, margin=0.0) == triplet_loss(good, y, margin=0.0)
    # a custom similarity matrix reverses the preference
    flipped = np.eye(len(EMOTIONS), dtype=np.float32)
    flipped[H, S] = flipped[S, H] = 0.9
    assert (emotion_constrained_triplet(good, y, similarity=flipped, **kw)
            > emotion_constrained_triplet(bad, y, similarity=flipped, **kw))


def test_emotion_constrained_triplet_trains_the_geometry() -> None:
    torch.manual_seed(0)
    y = torch.tensor([H, H, S, S, SU, SU])
    emb = torch.randn(6, 4, requires_grad=True)
    opt = torch.optim.Adam([emb], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        emotion_constrained_triplet(emb, y, margin=0.2).backward()
        opt.step()
    e = torch.nn.functional.normalize(emb.detach(), dim=-1)
    d = torch.cdist(e, e)
    assert d[0, 4] < d[0, 2]  # happy-surprised closer than happy-sad


def test_multitask_and_uncertainty_weighting() -> None:
    losses = {"emotion": torch.tensor(2.0), "valence_arousal": torch.tensor(4.0)}
    assert multitask_loss(losses, {"valence_arousal": 0.5}) == 4.0
    uw = UncertaintyWeighting(tasks=("emotion", "valence_arousal"))
    assert torch.isclose(uw(losses), torch.tensor(6.0))
    uw(losses).backward()
    assert uw.log_vars.grad is not None


def test_soft_hgr_prefers_correlated_views() -> None:
    torch.manual_seed(0)
    f = torch.randn(256, 4)
    correlated = soft_hgr_loss(f, f + 0.1 * torch.randn(256, 4))
    independent = soft_hgr_loss(f, torch.randn(256, 4))
    assert correlated < independent - 1.0
    with pytest.raises(ValueError):
        soft_hgr_loss(f[:1], f[:1])
    with pytest.raises(ValueError):
        soft_hgr_loss(f, f[:, :2])

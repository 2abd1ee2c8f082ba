"""Shared blocks and fusion modules: shapes, attention weights, the Self-ONN q=1 equivalence, the text
classifier against scikit-learn, decision/fuzzy/BEL fusion behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from avemo.models.blocks import (
    CBAM,
    ChannelAttention,
    CrossModalAttention,
    RecurrentEncoder,
    SelfONN1d,
    SelfONN2d,
    SpatialAttention,
    TemporalAttention,
    resnet18_2d,
    resnet18_3d,
    snippets,
)
from avemo.models.fusion.bel import BELFusion
from avemo.models.fusion.cross_attention import BidirectionalCrossAttention, DeepFusion
from avemo.models.fusion.decision import WeightedDecisionFusion
from avemo.models.fusion.early import ConcatFusion
from avemo.models.fusion.fuzzy import FuzzyFusion, Rule, trapezoid


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_resnet18_layouts_and_widths() -> None:
    net = resnet18_2d(width=8)
    assert [len(s) for s in net.stages] == [2, 2, 2, 2]  # ResNet-18: 2 basic blocks per stage
    assert net(torch.randn(2, 1, 64, 100)).shape == (2, 64)
    assert net.forward_features(torch.randn(1, 1, 64, 100)).shape[:2] == (1, 64)
    net3 = resnet18_3d(in_channels=1, width=4, layers=(1, 1))
    assert net3(torch.randn(2, 1, 4, 48, 48)).shape == (2, 8)
    assert net3.forward_features(torch.randn(2, 1, 4, 48, 48)).dim() == 5
    full = resnet18_2d()  # the paper's width: about 11 M parameters
    assert 10.5e6 < sum(p.numel() for p in full.parameters()) < 11.5e6


def test_attention_modules_return_their_weights() -> None:
    x = torch.randn(2, 8, 6, 6)
    y, w = ChannelAttention(channels=8)(x)
    assert y.shape == x.shape and w.shape == (2, 8) and ((w > 0) & (w < 1)).all()
    y, w = SpatialAttention()(x)
    assert y.shape == x.shape and w.shape == (2, 1, 6, 6)
    y3, w3 = CBAM(channels=8, dims=3, kernel_size=3)(torch.randn(2, 8, 2, 6, 6))
    assert w3["channel"].shape == (2, 8) and w3["spatial"].shape == (2, 1, 2, 6, 6)
    seq = torch.randn(3, 5, 16)
    pooled, w = TemporalAttention(dim=16)(seq)
    assert pooled.shape == (3, 16) and torch.allclose(w.sum(-1), torch.ones(3))
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [True] * 5])
    _, w = TemporalAttention(dim=16)(seq, mask)
    assert torch.all(w[1, 2:] == 0)
    out, w = CrossModalAttention(dim=16, heads=4)(seq, torch.randn(3, 7, 16))
    assert out.shape == (3, 5, 16) and w.shape == (3, 4, 5, 7)
    assert torch.allclose(w.sum(-1), torch.ones(3, 4, 5))


def test_cross_modal_attention_follows_the_context() -> None:
    # the query attends to the context item it matches: make item 3 the query's twin
    attn = CrossModalAttention(dim=8)
    with torch.no_grad():
        for lin in (attn.q, attn.k):
            lin.weight.copy_(torch.eye(8) * 3)
            lin.bias.zero_()
    ctx = torch.eye(8)[:6].unsqueeze(0)
    _, w = attn(torch.eye(8)[3:4].unsqueeze(0), ctx)
    assert int(w[0, 0, 0].argmax()) == 3


def test_self_onn_with_q1_is_an_ordinary_convolution() -> None:
    onn = SelfONN2d(in_channels=3, out_channels=5, kernel_size=3, q=1)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(onn.conv.weight)
        conv.bias.copy_(onn.conv.bias)
    x = torch.randn(2, 3, 12, 12)
    torch.testing.assert_close(onn(x), conv(x))
    onn1 = SelfONN1d(in_channels=2, out_channels=4, kernel_size=5, q=1)
    conv1 = nn.Conv1d(2, 4, 5, padding=2)
    conv1.load_state_dict(onn1.conv.state_dict())
    z = torch.randn(3, 2, 40)
    torch.testing.assert_close(onn1(z), conv1(z))


def test_self_onn_higher_order_is_the_maclaurin_sum() -> None:
    onn = SelfONN2d(in_channels=2, out_channels=3, kernel_size=3, q=3)
    x = torch.rand(1, 2, 8, 8) * 2 - 1
    k = onn.kernels()
    assert k.shape == (3, 3, 2, 3, 3)
    want = onn.conv.bias.view(1, -1, 1, 1) + sum(
        nn.functional.conv2d(x ** (i + 1), k[i], padding=1) for i in range(3))
    torch.testing.assert_close(onn(x), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        SelfONN2d(in_channels=1, out_channels=1, kernel_size=3, q=0)


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_recurrent_encoder(pooling: str) -> None:
    enc = RecurrentEncoder(input_dim=6, hidden=5, bidirectional=True, pooling=pooling)
    seq, pooled, w = enc(torch.randn(2, 7, 6))
    assert seq.shape == (2, 7, 10) and pooled.shape == (2, 10)
    assert (w is not None) == (pooling == "attention")


def test_snippets_split_and_repeat() -> None:
    x = torch.arange(2 * 3 * 10).view(2, 3, 10)
    s = snippets(x, count=3, dim=-1)
    assert s.shape == (2, 3, 3, 3)
    torch.testing.assert_close(s[:, 1], x[..., 3:6])
    short = snippets(torch.randn(1, 2, 5, 4), count=4, dim=1)  # 2 frames -> repeated to fill 4 snippets
    assert short.shape == (1, 4, 1, 5, 4)


def test_fusion_modules() -> None:
    a, v = torch.randn(3, 4, 8), torch.randn(3, 6, 8)
    a2, v2, w = BidirectionalCrossAttention(dim=8, heads=2)(a, v)
    assert a2.shape == a.shape and w["audio_to_video"].shape == (3, 2, 4, 6)
    z, ws = DeepFusion(dim=8, depth=2, heads=2)(torch.cat([a2, v2], 1))
    assert z.shape == (3, 8) and len(ws) == 2 and ws[0].shape == (3, 2, 11, 11)
    cat = ConcatFusion(dims={"audio": 8, "video": 4}, hidden=5)
    assert cat({"audio": torch.randn(3, 8), "video": None}).shape == (3, 5)
    with pytest.raises(ValueError):
        ConcatFusion(dims={"audio": 8}, hidden=5)({"audio": None})


def test_decision_fusion_weights_and_missing_modality() -> None:
    fuse = WeightedDecisionFusion(modalities=("video", "audio", "text"), weights=(0.55, 0.38, 0.07))
    p = {"video": torch.tensor([[1.0, 0.0]]), "audio": torch.tensor([[0.0, 1.0]]), "text": torch.tensor([[0.5, 0.5]])}
    fused, w = fuse(p)
    torch.testing.assert_close(fused, torch.tensor([[0.55 + 0.035, 0.38 + 0.035]]))
    fused, w = fuse({**p, "video": None})  # renormalised over audio and text
    torch.testing.assert_close(w, torch.tensor([0.0, 0.38 / 0.45, 0.07 / 0.45]))
    assert "video 0.55" in fuse.describe()
    learned = WeightedDecisionFusion(modalities=("a", "b"), weights=(0.7, 0.3), learn=True)
    torch.testing.assert_close(learned.weights(), torch.tensor([0.7, 0.3]))
    assert learned.logits.requires_grad


def test_fuzzy_fusion_rules_are_printable_and_sensible() -> None:
    x = torch.linspace(0, 1, 5)
    torch.testing.assert_close(trapezoid(x, 0.0, 0.25, 0.5, 0.75), torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]))
    fuzzy = FuzzyFusion(modalities=("video", "audio"), trust={"video": 0.6, "audio": 0.4})
    text = fuzzy.rules_text()
    assert len(text.splitlines()) == len(fuzzy.rules) == 9 + 6
    assert "IF video is high AND audio is high THEN support is 1.00" in text
    assert "IF video is high AND audio is low THEN support is 0.60" in text
    agree = {"video": torch.tensor([[0.9, 0.05, 0.05]]), "audio": torch.tensor([[0.8, 0.1, 0.1]])}
    fused, firing = fuzzy(agree)
    assert fused.argmax().item() == 0 and fused[0, 0] > 0.8
    assert firing.shape == (1, 3, len(fuzzy.rules))
    # more trust in the face: a face-confident class beats a voice-confident one
    split = {"video": torch.tensor([[0.9, 0.1]]), "audio": torch.tensor([[0.1, 0.9]])}
    assert fuzzy(split)[0].argmax().item() == 0
    alone, _ = fuzzy({"video": None, "audio": torch.tensor([[0.1, 0.9]])})
    assert alone.argmax().item() == 1
    custom = FuzzyFusion(modalities=("video",), rules=[Rule((("video", "high"),), 1.0)])
    assert custom.rules_text() == "IF video is high THEN support is 1.00"
    with pytest.raises(ValueError):
        FuzzyFusion(modalities=("video",), rules=[Rule((("voice", "high"),), 1.0)])


def test_bel_rule_learning_reduces_error() -> None:
    bel = BELFusion(dims={"audio": 6, "video": 4}, num_classes=3, cortex_dim=8)
    feats = {"audio": torch.randn(12, 6), "video": torch.randn(12, 4)}
    reward = nn.functional.one_hot(torch.arange(12) % 3, 3).float()
    errors = [float(bel.rule_update(feats, reward, alpha=0.05, beta=0.05)) for _ in range(60)]
    assert errors[-1] < 0.6 * errors[0]
    e, parts = bel({"audio": feats["audio"], "video": None})
    assert e.shape == (12, 3) and torch.allclose(e, parts["amygdala"] - parts["orbitofrontal"])


def test_text_classifier_matches_scikit_learn() -> None:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from avemo.models.blocks.text import TextEmotionClassifier, clean_text

    assert clean_text("I feel GREAT!!! http://x.co @bob #win it's") == "i feel great its"
    texts = ["i feel so happy today", "this is wonderful joy", "i am sad and lonely", "crying all day so sad",
             "i am furious and angry", "so angry i could scream"] * 3
    labels = ["happy", "happy", "sad", "sad", "angry", "angry"] * 3
    clf = TextEmotionClassifier(labels=("happy", "sad", "angry", "fearful"), n_features=2**10).fit(texts, labels, C=4)
    ref = make_pipeline(HashingVectorizer(n_features=2**10, ngram_range=(1, 2), alternate_sign=False, norm=None,
                                          preprocessor=clean_text), TfidfTransformer(sublinear_tf=True),
                        LogisticRegression(C=4, solver="newton-cg", max_iter=300)).fit(texts, labels)
    probe = ["so happy and full of joy", "lonely and sad", "angry angry"]
    ours = clf.predict_proba(probe)
    theirs = ref.predict_proba(probe)
    order = [list(ref.classes_).index(n) for n in ("happy", "sad", "angry")]
    np.testing.assert_allclose(ours[:, :3], theirs[:, order], atol=1e-4)
    assert np.all(ours[:, 3] < 1e-6)  # a class never seen in training gets no probability
    assert list(ours.argmax(1)) == [0, 1, 2]

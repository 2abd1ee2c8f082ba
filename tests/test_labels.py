import numpy as np
import pytest

from avemo import labels


def test_every_corpus_maps_into_the_taxonomy():
    for corpus in labels.CORPORA:
        assert set(labels.corpus_labels(corpus)) <= set(labels.EMOTIONS)
    assert labels.corpus_labels("ravdess") == labels.EMOTIONS
    assert "calm" not in labels.corpus_labels("fer2013")


def test_contempt_policy_and_unknown_labels():
    assert labels.to_canonical("mead", "contempt") is None
    assert labels.to_canonical("mead", "contempt", contempt="disgust") == "disgust"
    assert labels.to_canonical("carer", "love") is None
    assert labels.to_canonical("cremad", "FEA") == "fearful"
    assert labels.to_canonical("fer2013", "2") == "fearful"
    with pytest.raises(KeyError, match="savee"):
        labels.to_canonical("savee", "xx")


def test_projection_and_similarity():
    p = labels.project_probs(np.array([[0.2, 0.8]]), ["happy", "love"], labels.EMOTIONS)
    assert p.shape == (1, 8) and p[0, labels.EMOTIONS.index("happy")] == pytest.approx(0.2)
    sim = labels.similarity_matrix()
    h, s, su = (labels.EMOTIONS.index(n) for n in ("happy", "sad", "surprised"))
    assert sim[h, su] > sim[h, s]
    assert np.allclose(np.diag(sim), 1.0)

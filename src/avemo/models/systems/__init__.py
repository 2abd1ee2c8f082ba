"""The reviewed systems, one small file each, composed from :mod:`avemo.models.blocks` and
:mod:`avemo.models.fusion`, registered by name (``avemo.list_models()``), each with its model card
(the module docstring: the paper, what is implemented as described, and what differs).

The forward convention (uniform across systems)
-----------------------------------------------
``system(audio=None, video=None[, text=None]) -> dict`` with keyword inputs only:

- ``audio``: log-mel spectrogram ``(B, n_mels, T)`` at 100 frames/s
  (:class:`avemo.audio.mel.MelConfig`'s defaults, 64 bands);
- ``video``: face crops ``(B, T, C, H, W)`` in [0, 1] (grey ``C=1`` 48x48 by default; systems that
  use key frames take ``T`` key frames, see :func:`akturk2024_onn.key_frame_input`);
- ``text`` (only ``almulla2024_fvt``): a list of sentences or their featurised tensor.

Any modality may be ``None`` (at least one must be given): the systems answer from what is present
(learned placeholders, skipped cross-modal steps or renormalised decision weights).

The output dict always holds:

- ``logits`` ``(B, K)``: class scores over ``system.labels`` (for decision-level fusion these are
  log-probabilities, so ``softmax(logits)`` is the fused probability either way);
- ``embedding`` ``(B, D)``: the fused representation;
- ``embeddings``: ``{modality: (B, D_m)}`` per-modality representations of the present modalities
  (their sizes in ``system.embedding_dims``; used by the soft-HGR objective of ``ma2020_shgr``);
- ``attention``: ``{name: weights}`` — every attention map (or fusion weight / rule firing) for plotting;

and, where a system has them, ``modality_logits`` (each branch's own class scores), ``aux``
(auxiliary-task outputs), ``probs``. ``system.loss(out, target)`` is the system's full training
objective (cross-entropy plus its own terms: metric loss, branch losses, auxiliary tasks ...).
``system.example_inputs(batch)`` builds inputs of the right shapes; ``system.spec`` describes them.
"""

from avemo.models.systems import (  # noqa: F401  (importing registers the systems)
    akturk2024_onn,
    almulla2024_fvt,
    dixit2024_cnn,
    farhoudi2021_bel,
    goncalves2024_robust,
    hao2020_ensemble,
    khan2024_mser,
    kozlov2024_fuzzy,
    ma2020_shgr,
    mocanu2023_cma,
    zhang2016_cnnrnn,
)
from avemo.models.systems.base import AUDIO_FPS, EmotionSystem, InputSpec, SystemWrapper

__all__ = ["AUDIO_FPS", "EmotionSystem", "InputSpec", "SystemWrapper", "model_card"]


def model_card(name: str) -> str:
    """The model card of a registered system (its module docstring), e.g. for a bundle's MODEL_CARD.md."""
    import importlib
    import inspect

    from avemo.models.registry import model_info

    return inspect.cleandoc(importlib.import_module(model_info(name).module).__doc__ or "")

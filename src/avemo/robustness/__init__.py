"""Robustness: missing modalities (modality dropout), adversarial perturbations (FGSM, PGD) and input
corruptions (audio noise at an SNR, face occlusion).

Submodules: :mod:`~avemo.robustness.missing`, :mod:`~avemo.robustness.adversarial`,
:mod:`~avemo.robustness.corruptions`.
"""

"""Fusion modules: late (calibrated log-linear pool; :mod:`.late` runs without torch, :mod:`.calibrated` is the
torch module registered as ``fusion``), early, decision, cross-attention, fuzzy, brain-emotional-learning."""

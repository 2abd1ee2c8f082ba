"""Unimodal encoders with their classification heads: the voice CNN and the face expression network."""

from avemo.models.encoders import (
    audio,  # noqa: F401  (registers "voice")
    visual,  # noqa: F401  (registers "face")
)

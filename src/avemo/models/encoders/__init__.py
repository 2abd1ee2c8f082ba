"""Unimodal encoders with their classification heads: the voice CNN, the face expression network, the text
classifier."""

from avemo.models.encoders import (
    audio,  # noqa: F401  (registers "voice")
    text,  # noqa: F401  (registers "text")
    visual,  # noqa: F401  (registers "face")
)

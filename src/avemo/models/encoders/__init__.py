import avemo.models.fusion  # noqa: F401  (registers "fusion"; the registry imports only encoders and systems)
from avemo.models.encoders import (
    audio,  # noqa: F401  (registers "voice")
    visual,  # noqa: F401  (registers "face")
)

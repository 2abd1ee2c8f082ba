from avemo.models.encoders import visual  # noqa: F401  (registers "face")

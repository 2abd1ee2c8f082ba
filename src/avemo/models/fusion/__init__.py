from avemo.models.fusion import late  # noqa: F401  (registers "fusion")

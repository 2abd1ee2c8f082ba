"""The library's exceptions: one family, each naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class AvemoError(Exception):
    """Base class of every error avemo raises on purpose."""


class MediaError(AvemoError):
    """A media file cannot be used: missing, empty, truncated, not media, or without the needed stream."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetError(AvemoError):
    """A corpus cannot be read: missing folder, unexpected layout, bad file name."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelError(AvemoError):
    """A model or bundle name is unknown, or its weights do not match its architecture."""


class RecipeError(AvemoError):
    """A recipe file is missing or malformed."""


class SplitError(AvemoError, ValueError):
    """A split cannot be made as asked, or a given split leaks speakers or takes across its sides."""

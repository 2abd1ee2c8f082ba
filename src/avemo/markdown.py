"""Sections of generated Markdown files (BENCHMARKS.md): each command owns the text between its markers."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, begin: str, end: str, section: str, *, title: str = "# Benchmarks") -> Path:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) in place of the text between
    those markers in ``path``, or append it; the rest of the file is kept as it is."""
    text = path.read_text() if path.is_file() else f"{title}\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    return path

"""What produced an artefact: library versions recorded in run configs and feature manifests."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata

CORE_LIBRARIES = ("vlkge", "torch", "numpy", "pyarrow", "polars")


def library_versions(extra: Sequence[str] = ()) -> dict[str, str | None]:
    """Installed versions of the core libraries plus ``extra`` (None where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in (*CORE_LIBRARIES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out

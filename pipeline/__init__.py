"""Dataset adapters: ``crawl`` copies and verifies a dump, ``clean`` builds the canonical graph.

An adapter is registered under a dataset name (``wn9-img``) or a prefix (``custom`` for
``custom:<name>``). Nothing outside this package knows which dataset a graph came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from vlkge.graph import Graph
from vlkge.registry import Registry


class Adapter(Protocol):
    """What every dataset adapter provides."""

    def crawl(
        self, dataset: str, source: str | None, raw_dir: Path, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Copy and verify the inputs into ``raw_dir``; return the raw manifest (files, sha256)."""
        ...

    def clean(self, dataset: str, raw_dir: Path, graph_dir: Path, params: dict[str, Any]) -> Graph:
        """Build the canonical graph in ``graph_dir`` from ``raw_dir``; return it."""
        ...


ADAPTERS: Registry[Adapter] = Registry("dataset")


def adapter_for(dataset: str) -> Adapter:
    """The adapter for ``dataset``: by full name, else by the prefix before ``:``."""
    _load_builtin_adapters()
    if dataset in ADAPTERS:
        return ADAPTERS.get(dataset)
    prefix = dataset.split(":", 1)[0]
    return ADAPTERS.get(prefix, key="dataset")


def _load_builtin_adapters() -> None:
    # Importing the modules registers their adapters.
    from vlkge.pipeline import custom, wikiart, wn9_img  # noqa: F401

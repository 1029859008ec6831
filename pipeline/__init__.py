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


# The built-in adapters, by import path: imported when first used (the adapters import nothing
# from this module, so it and they form no cycle). More can be added with ADAPTERS.add(name, obj).
ADAPTERS: Registry[Adapter] = Registry(
    "dataset",
    entries={
        "wn9-img": (
            "vlkge.pipeline.wn9_img:ADAPTER",
            "WN9-IMG (Xie et al. 2017), as the VL-KGE paper uses it",
        ),
        "wikiart-v1": ("vlkge.pipeline.wikiart:ADAPTER", "WikiArt-MKG v1 from the WikiArt scrape"),
        "wikiart-v2": ("vlkge.pipeline.wikiart:ADAPTER", "WikiArt-MKG v2 from the WikiArt scrape"),
        "custom": ("vlkge.pipeline.custom:ADAPTER", "a user graph directory: custom:<name>"),
    },
)


def adapter_for(dataset: str) -> Adapter:
    """The adapter for ``dataset``: by full name, else by the prefix before ``:``."""
    if dataset in ADAPTERS:
        return ADAPTERS.get(dataset)
    prefix = dataset.split(":", 1)[0]
    return ADAPTERS.get(prefix, key="dataset")

"""Shared helpers for the encode tests: small graphs over real images, one tiny-clip encoder.

Real images are the downscaled photos of tests/fixtures (tests/conftest.py: PHOTOS); bad files
are written into each test's temporary dataset directory.
"""

from __future__ import annotations

import functools
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import FIXTURES, PHOTOS
from vlkge.graph import Graph, write_graph

IMAGENET = PHOTOS
WIKIART = FIXTURES / "wikiart_samples"

needs_data = pytest.mark.skipif(not IMAGENET.is_dir(), reason=f"test photos not found at {IMAGENET}")


def imagenet(wnid: str) -> str:
    """Absolute path of the sample photo of an ImageNet class."""
    return str(IMAGENET / f"{wnid}.JPEG")


def real_images(count: int) -> list[str]:
    """``count`` real photos (absolute paths), the same ones every time."""
    return [str(p) for p in sorted(IMAGENET.glob("*.JPEG"))[:count]]


def make_graph(
    dataset_dir: Path,
    names: list[str],
    texts: list[str | None],
    images: list[list[str]],
    relations: tuple[str, ...] = ("_hypernym", "isCreatedByArtist"),
) -> Graph:
    """A canonical graph in ``dataset_dir/graph`` with one triple per relation."""
    n = len(names)
    entities = pl.DataFrame(
        {
            "entity_id": list(range(n)),
            "key": [f"e{i}" for i in range(n)],
            "type": [None] * n,
            "name": names,
            "text": texts,
            "images": images,
        },
        schema_overrides={"entity_id": pl.Int32, "type": pl.String, "images": pl.List(pl.String)},
    )
    rels = pl.DataFrame(
        {"relation_id": list(range(len(relations))), "key": list(relations)},
        schema_overrides={"relation_id": pl.Int32},
    )
    triples = pl.DataFrame(
        {
            "head": [i % n for i in range(len(relations))],
            "relation": list(range(len(relations))),
            "tail": [(i + 1) % n for i in range(len(relations))],
            "split": ["train"] * len(relations),
        },
        schema_overrides={"head": pl.Int32, "relation": pl.Int32, "tail": pl.Int32},
    )
    return write_graph(dataset_dir / "graph", entities, rels, triples, {"source": "test"})


@functools.cache
def tiny_encoder():
    """One seeded tiny-clip encoder per test process (building it imports open_clip)."""
    from vlkge.encoders import build_encoder

    return build_encoder("tiny-clip", device="cpu")


def store_bytes(store: Path) -> dict[str, bytes]:
    """Every file of a store (relative path → bytes), to compare two stores exactly."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}

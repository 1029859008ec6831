"""A tiny multimodal graph for the VL tests: texts for every entity, real ImageNet photos (the
test fixtures' downscaled ones) for some, and a train split that leaves one entity unseen
(inductive)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from tests.conftest import PHOTOS, triples_frame
from vlkge.graph import Graph, write_graph

IMAGES = PHOTOS
NUM_ENTITIES = 24
NUM_RELATIONS = 2
UNSEEN = 23  # occurs in test only


def image_files(count: int) -> list[Path]:
    return sorted(IMAGES.glob("*.JPEG"))[:count]


def tiny_triples() -> dict[str, list[tuple[int, int, int]]]:
    """Relation 0: i → i+1 within groups of 4 (a chain); relation 1: i → its group's first."""
    rows = []
    for i in range(NUM_ENTITIES - 1):
        g = i // 4 * 4
        if (i + 1) % 4 and i + 1 != UNSEEN:
            rows.append((i, 0, i + 1))
        if i != g:
            rows.append((i, 1, g))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    test = [rows[j] for j in order[:4]]
    train = [rows[j] for j in order[4:]]
    test += [(UNSEEN, 1, 20), (UNSEEN, 0, 22)]
    return {"train": train, "valid": test[:2], "test": test}


def write_tiny_vl_graph(
    root: Path, *, images: int = 8, inductive: bool = True, text_of: Callable[[int], str] | None = None
) -> Graph:
    """``root/graph``: 24 entities with texts (``text_of(i)``, default "thing i, member of group
    i // 4"), the first ``images`` with a real photo each."""
    files = image_files(images)
    triples = tiny_triples()
    if not inductive:
        triples["test"] = [t for t in triples["test"] if UNSEEN not in (t[0], t[2])]
        triples["valid"] = triples["test"][:2]
    frame = triples_frame(triples)
    n = NUM_ENTITIES
    entities = pl.DataFrame(
        {
            "entity_id": np.arange(n, dtype=np.int32),
            "key": [f"e{i}" for i in range(n)],
            "type": [None] * n,
            "name": [f"thing {i}" for i in range(n)],
            "text": [(text_of or _group_text)(i) for i in range(n)],
            "images": [[str(files[i])] if i < len(files) else [] for i in range(n)],
        },
        schema_overrides={"type": pl.String, "text": pl.String, "images": pl.List(pl.String)},
    )
    relations = pl.DataFrame(
        {"relation_id": np.arange(NUM_RELATIONS, dtype=np.int32), "key": ["next", "group_of"]}
    )
    meta = {"dataset": "tiny-vl", "protocol": {"inductive": inductive}}
    return write_graph(root / "graph", entities, relations, frame, meta)


def _group_text(i: int) -> str:
    return f"thing {i}, member of group {i // 4}"


_ENCODER = {}


def tiny_clip():
    """One seeded tiny-clip encoder per test process (building it imports open_clip: slow)."""
    if "tiny-clip" not in _ENCODER:
        from vlkge.encoders import build_encoder

        _ENCODER["tiny-clip"] = build_encoder("tiny-clip", device="cpu", precision="fp32")
    return _ENCODER["tiny-clip"]


def encode_tiny(graph: Graph, store: str = "tiny-clip") -> Path:
    """Encode ``graph`` with tiny-clip into ``<dataset dir>/features/<store>``; return the store."""
    from vlkge.encoding import EncodeOptions, encode_graph

    store_dir = graph.root.parent / "features" / store
    encode_graph(graph, tiny_clip(), store_dir, EncodeOptions(workers=0, progress=False), log=lambda m: None)
    return store_dir


def encoded_project(data: Path) -> Graph:
    """``data/tiny-vl``: the tiny graph (every entity seen in training), encoded with tiny-clip."""
    graph = write_tiny_vl_graph(data / "tiny-vl", inductive=False)
    encode_tiny(graph)
    return graph


def vl_params(**model):
    """Small training params for the tiny graph; ``model`` overrides model keys."""
    from vlkge.config import load_config

    spec = {"backbone": "distmult", "dim": 16, "modalities": ["structural", "visual", "textual"], **model}
    return load_config(
        None,
        {
            "seed": 0,
            "encode": {"model": "tiny-clip"},
            "model": spec,
            "train": {
                "epochs": 3,
                "batch_size": 16,
                "negatives": 4,
                "device": "cpu",
                "eval_every": 100,
                "threads": 1,
                "lr": 0.05,
            },
        },
    )

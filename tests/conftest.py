"""Shared fixtures: the test data shipped under tests/fixtures, the optional data mirror, small
canonical graphs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from vlkge.graph import Graph, write_graph

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# The full dumps (WikiArt scrape, all of WN9-IMG): $VLKGE_DATA_MIRROR, else ../shared/data next to
# the repository. Only tests marked ``mirror`` read it; they are skipped where it is absent.
MIRROR = Path(os.environ.get("VLKGE_DATA_MIRROR") or SHARED_DATA)
# Small real excerpts shipped with the tests (tests/fixtures/README.md: origins and licences).
FIXTURES = REPO / "tests" / "fixtures"
WN9_FIXTURE = FIXTURES / "wn9_img"
PHOTOS = WN9_FIXTURE / "images_imagenet1k_sample"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``mirror`` when no data mirror is there."""
    if MIRROR.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the data mirror ($VLKGE_DATA_MIRROR or {SHARED_DATA})")
    for item in items:
        if "mirror" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not MIRROR.is_dir():
        pytest.skip(f"real data not found at {MIRROR}")
    return MIRROR


def triples_frame(triples: dict[str, list[tuple[int, int, int]]]) -> pl.DataFrame:
    """The canonical triples table from id triples per split."""
    rows = [(h, r, t, s) for s, items in triples.items() for h, r, t in items]
    return pl.DataFrame(
        {
            "head": [x[0] for x in rows],
            "relation": [x[1] for x in rows],
            "tail": [x[2] for x in rows],
            "split": [x[3] for x in rows],
        },
        schema={"head": pl.Int32, "relation": pl.Int32, "tail": pl.Int32, "split": pl.String},
    )


def make_graph(
    root: Path,
    triples: dict[str, list[tuple[int, int, int]]],
    num_entities: int,
    num_relations: int,
    protocol: dict | None = None,
) -> Graph:
    """A canonical graph from id triples per split (entities e0.., relations r0..)."""
    frame = triples_frame(triples)
    entities = pl.DataFrame(
        {
            "entity_id": np.arange(num_entities, dtype=np.int32),
            "key": [f"e{i}" for i in range(num_entities)],
            "type": [None] * num_entities,
            "name": [f"e{i}" for i in range(num_entities)],
            "text": [None] * num_entities,
            "images": [[] for _ in range(num_entities)],
        },
        schema_overrides={"type": pl.String, "text": pl.String, "images": pl.List(pl.String)},
    )
    relations = pl.DataFrame(
        {
            "relation_id": np.arange(num_relations, dtype=np.int32),
            "key": [f"r{i}" for i in range(num_relations)],
        }
    )
    meta = {"dataset": "test"} if protocol is None else {"dataset": "test", "protocol": protocol}
    return write_graph(root, entities, relations, frame, meta)


@pytest.fixture(scope="session")
def demo_graph(tmp_path_factory) -> Graph:
    """The synthetic demo graph (user-graph path: crawl + clean), built once per session."""
    from vlkge.pipeline import adapter_for
    from vlkge.pipeline.synthetic import write_synthetic_graph

    from vlkge.config import load_params

    base = tmp_path_factory.mktemp("demo")
    source = write_synthetic_graph(base / "source", entities=300, seed=0)
    params = load_params(overrides={"crawl": {"source": str(source), "images": None}})
    adapter = adapter_for("custom:demo")
    adapter.crawl("custom:demo", str(source), base / "custom-demo" / "raw", params)
    return adapter.clean("custom:demo", base / "custom-demo" / "raw", base / "custom-demo" / "graph", params)


@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory) -> Graph:
    """The tiny real-image graph (tests/vl_data.py) with its tiny-clip features, per module."""
    from tests.vl_data import encode_tiny, write_tiny_vl_graph

    graph = write_tiny_vl_graph(tmp_path_factory.mktemp("tiny") / "tiny-vl")
    encode_tiny(graph)
    return graph

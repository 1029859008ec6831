"""The synthetic demo graph: deterministic, well split, readable by ``custom``, and learnable."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from vlkge.pipeline import adapter_for
from vlkge.pipeline.synthetic import write_synthetic_graph

from vlkge.config import default_params
from vlkge.graph import Graph


def read(out: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_csv(out / "triples.csv"), pl.read_csv(out / "entities.csv")


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = write_synthetic_graph(tmp_path / "a", seed=3)
    b = write_synthetic_graph(tmp_path / "b", seed=3)
    c = write_synthetic_graph(tmp_path / "c", seed=4)
    for name in ("triples.csv", "entities.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "triples.csv").read_bytes() != (c / "triples.csv").read_bytes()


@pytest.mark.parametrize("relations", [1, 2, 5, 6])
def test_shape_and_split(tmp_path: Path, relations: int) -> None:
    triples, entities = read(write_synthetic_graph(tmp_path, entities=200, relations=relations))
    assert triples.columns == ["head", "relation", "tail", "mode"]
    assert triples["relation"].n_unique() == relations
    assert entities.height == 200
    assert set(pl.concat([triples["head"], triples["tail"]])) == set(entities["entity"])
    assert triples.select("head", "relation", "tail").is_duplicated().sum() == 0
    assert (triples["head"] != triples["tail"]).all()
    shares = triples["mode"].value_counts(normalize=True)
    share = dict(zip(shares["mode"], shares["proportion"], strict=True))
    if relations >= 5:
        assert 0.75 < share["train"] < 0.88 and 0.06 < share["val"] < 0.14
        assert 0.06 < share["test"] < 0.14
    train = triples.filter(pl.col("mode") == "train")
    seen = set(train["head"]) | set(train["tail"])
    held = triples.filter(pl.col("mode") != "train")
    assert set(held["head"]) <= seen and set(held["tail"]) <= seen
    assert set(held["relation"]) <= set(train["relation"])


def test_text_for_most_entities_not_all(tmp_path: Path) -> None:
    _, entities = read(write_synthetic_graph(tmp_path / "t", entities=500))
    has_text = entities["text"].is_not_null() & (entities["text"].str.len_chars() > 0)
    assert 0.8 < has_text.mean() < 0.97
    _, plain = read(write_synthetic_graph(tmp_path / "p", entities=500, with_text=False))
    assert "text" not in plain.columns


def custom_graph(tmp_path: Path, out: Path) -> Graph:
    params = default_params()
    adapter = adapter_for("custom:demo")
    ds = tmp_path / "data" / "custom-demo"
    adapter.crawl("custom:demo", str(out), ds / "raw", params)
    return adapter.clean("custom:demo", ds / "raw", ds / "graph", params)


def test_custom_adapter_reads_it_cleanly(tmp_path: Path, caplog) -> None:
    out = write_synthetic_graph(tmp_path / "syn")
    triples, _ = read(out)
    with caplog.at_level(logging.WARNING, logger="vlkge.pipeline"):
        graph = custom_graph(tmp_path, out)
    assert not caplog.records  # no duplicates, no unseen triples, no unlisted entities
    assert graph.num_entities == 300 and graph.num_relations == 6
    assert sum(len(a) for a in graph.triples.values()) == triples.height
    m = graph.summary()["modalities"]
    assert m["image"] == 0 and 0 < m["none"] < 60


def _filtered_tail_mrr(graph: Graph, seed: int = 0, lr: float = 0.1) -> float:
    """Train a tiny 1-vs-all DistMult on train and return filtered tail MRR on test.

    Plain Adagrad by hand: torch.optim's first step imports torch._dynamo (seconds).
    """
    torch.manual_seed(seed)
    train, test = graph.split("train"), graph.split("test")
    n, r, dim = graph.num_entities, graph.num_relations, 16
    ent = (torch.randn(n, dim) * 0.1).requires_grad_()
    rel = (torch.randn(r, dim) * 0.1).requires_grad_()
    sums = [torch.zeros_like(ent), torch.zeros_like(rel)]
    for _ in range(60):
        scores = (ent[train[:, 0]] * rel[train[:, 1]]) @ ent.T
        loss = torch.nn.functional.cross_entropy(scores, train[:, 2])
        grads = torch.autograd.grad(loss, [ent, rel])
        with torch.no_grad():
            for param, grad, acc in zip((ent, rel), grads, sums, strict=True):
                acc += grad**2
                param -= lr * grad / (acc.sqrt() + 1e-10)
    every = torch.from_numpy(graph.all_triples())
    with torch.no_grad():
        scores = (ent[test[:, 0]] * rel[test[:, 1]]) @ ent.T
        target = scores.gather(1, test[:, 2:3])
        known = torch.zeros_like(scores, dtype=torch.bool)
        for i, (h, q) in enumerate(test[:, :2].tolist()):
            hit = (every[:, 0] == h) & (every[:, 1] == q)
            known[i, every[hit, 2]] = True
        known.scatter_(1, test[:, 2:3], False)
        ranks = 1 + ((scores > target) & ~known).sum(1)
    return float((1.0 / ranks.double()).mean())


def test_structure_is_learnable(tmp_path: Path) -> None:
    graph = custom_graph(tmp_path, write_synthetic_graph(tmp_path / "syn", seed=0))
    random_mrr = float(np.mean(1.0 / np.arange(1, graph.num_entities + 1)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    try:
        mrr = _filtered_tail_mrr(graph)
    finally:
        torch.set_num_threads(threads)
    assert mrr > 10 * random_mrr, (mrr, random_mrr)  # ~0.5 against ~0.02 for random scores

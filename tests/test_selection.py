"""Model selection never sees test triples: the validation that keeps an epoch filters with train
and valid only, so test triples cannot change which epoch is kept; patience 0 never stops early."""

from __future__ import annotations

import numpy as np
import torch

from tests.conftest import make_graph
from vlkge.config import load_config
from vlkge.evaluation import evaluate
from vlkge.graph import Graph
from vlkge.ranking import Filters
from vlkge.training import Trainer


def _params(**train):
    spec = {"epochs": 8, "batch_size": 64, "negatives": 8, "eval_every": 1, "patience": 3, "device": "cpu"}
    return load_config(
        overrides={"model": {"dim": 16, "backbone": "distmult"}, "train": {**spec, **train}, "seed": 3}
    )


def _with_test(graph: Graph, root, test: np.ndarray) -> Graph:
    """``graph`` with its test split replaced by ``test`` [n, 3]."""
    splits = {s: [tuple(map(int, t)) for t in graph.triples[s]] for s in ("train", "valid")}
    splits["test"] = [tuple(map(int, t)) for t in test]
    return make_graph(root, splits, graph.num_entities, graph.num_relations)


def _crowding_test(graph: Graph) -> np.ndarray:
    """Test triples sharing every valid query (h, r, ?) and (?, r, t) with many other answers:
    a validation filter that held them would remove most candidates and raise valid MRR."""
    known = {tuple(t) for s in ("train", "valid") for t in graph.triples[s].tolist()}
    rows = []
    for h, r, t in graph.triples["valid"].tolist():
        for x in range(0, graph.num_entities, 3):
            for triple in ((h, r, x), (x, r, t)):
                if triple not in known:
                    known.add(triple)
                    rows.append(triple)
    return np.array(rows, dtype=np.int64)


def test_test_triples_cannot_change_the_kept_epoch(demo_graph, tmp_path):
    plain = _with_test(demo_graph, tmp_path / "plain", demo_graph.triples["test"][:5])
    crowded = _with_test(demo_graph, tmp_path / "crowded", _crowding_test(demo_graph))
    states = []
    for graph in (plain, crowded):
        trainer = Trainer(graph, _params(), tmp_path / f"run-{graph.root.parent.name}")
        assert len(trainer.filters.tail.keys) == len(
            Filters.build(graph.triples_of(("train", "valid")), graph.num_relations).tail.keys
        )
        states.append(trainer.fit(show=False, log=None))
        models = trainer.model
    curves = [[h["valid_mrr"] for h in s.history] for s in states]
    assert curves[0] == curves[1]
    assert states[0].best_epoch == states[1].best_epoch
    # the check is sensitive: a validation filter that knew the test triples would score higher
    leaky = Filters.build(crowded.all_triples(), crowded.num_relations)
    seen = evaluate(models, crowded, "valid", filters=leaky)["overall"]["mrr"]
    assert seen > evaluate(models, crowded, "valid", filters=trainer.filters)["overall"]["mrr"] + 0.01


def test_validation_follows_valid_protocol(demo_graph, tmp_path):
    trainer = Trainer(demo_graph, _params(epochs=1, valid_protocol="paper"), tmp_path / "paper")
    assert trainer.filters.tail is trainer.filters.head  # the reference code's shared key
    assert trainer.validate()["setup"]["protocol"] == "paper"


def test_patience_zero_never_stops_early(demo_graph, tmp_path):
    lr = {"lr": 5.0}  # a too-high lr degrades valid MRR: patience 1 stops, patience 0 runs on
    stopped = Trainer(demo_graph, _params(epochs=10, patience=1, **lr), tmp_path / "one").fit(
        show=False, log=None
    )
    full = Trainer(demo_graph, _params(epochs=10, patience=0, **lr), tmp_path / "zero").fit(
        show=False, log=None
    )
    assert stopped.stopped_early and stopped.epoch < 10
    assert not full.stopped_early and full.epoch == 10
    assert full.best_epoch == max(full.history, key=lambda h: (h["valid_mrr"], -h["epoch"]))["epoch"]
    saved = torch.load(tmp_path / "zero" / "model.pt", weights_only=False)
    assert saved["params"]["train"]["patience"] == 0

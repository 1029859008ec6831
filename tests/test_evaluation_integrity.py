"""Numbers nobody can fault: a query that cannot be scored is a counted miss at its worst rank (or
dropped on request, with its count in the table, or refused), a split with nothing to score is an
error, and per-relation candidate pools are built without test labels."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from tests.conftest import make_graph
from tests.test_evaluation import FixedScorer
from vlkge.errors import InputError
from vlkge.evaluation import evaluate, rank_triples
from vlkge.metric_tables import format_metrics
from vlkge.ranking import Filters, candidate_pools, rank_filtered


class _Absent(torch.nn.Module):
    """FixedScorer's entity table with some entities lacking any representation."""

    def __init__(self, inner, absent: list[int]):
        super().__init__()
        self.inner, self.absent = inner, absent
        self.num_entities = inner.num_entities

    @property
    def present(self):
        mask = torch.ones(self.num_entities, dtype=torch.bool)
        mask[self.absent] = False
        return mask

    def all(self):
        return self.inner.all()


def _scorer(n: int, absent: list[int]) -> FixedScorer:
    gen = torch.Generator().manual_seed(0)
    model = FixedScorer(torch.rand(n, 1, n, generator=gen), torch.rand(n, 1, n, generator=gen))
    model.entity = _Absent(model.entity, absent)
    return model


def _graph(tmp_path, test):
    return make_graph(tmp_path / "g", {"train": [(0, 0, 1), (1, 0, 2)], "valid": [], "test": test}, 8, 1)


def test_a_miss_ranks_below_every_candidate_that_counts():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6]])
    allowed = torch.tensor([[True, True, True, False], [True, True, True, True]])
    filtered = (torch.tensor([0]), torch.tensor([2]))  # row 0: e2 is another true answer
    ranked = rank_filtered(scores, torch.tensor([1, 1]), filtered, allowed, miss=torch.tensor([True, False]))
    # row 0: candidates that count and are not filtered: e0 (e3 not allowed, e2 filtered) → rank 2
    assert ranked.optimistic.tolist() == [2, 1] and ranked.pessimistic.tolist() == [2, 1]


def test_unrepresented_queries_are_counted_misses(tmp_path):
    graph = _graph(tmp_path, [(0, 0, 2), (3, 0, 1), (4, 0, 5)])
    model = _scorer(8, absent=[5])
    metrics = evaluate(model, graph, "test")
    assert metrics["overall"]["count"] == 6  # nothing dropped
    assert metrics["setup"]["unrepresented_queries"] == 2  # (4, r0, 5) in both directions
    assert metrics["setup"]["dropped_queries"] == 0
    table = format_metrics(metrics)
    assert "2 queries touching entities with no representation: misses at the worst rank" in table
    # each is ranked below every represented candidate other than its answer: head query (?, r0,
    # e5): 6 besides the answer e4 → 7; tail query (e4, r0, ?): the answer e5 is no candidate → 8
    result = rank_triples(
        model,
        graph.split("test"),
        Filters.build(graph.all_triples(), 1),
        num_relations=1,
        exclude=~model.entity.present,
    )
    assert result.rank[result.unrepresented].tolist() == [7.0, 8.0]
    assert result.unrepresented.sum() == 2


def test_dropping_is_an_opt_in_printed_in_the_table(tmp_path):
    graph = _graph(tmp_path, [(0, 0, 2), (3, 0, 1), (4, 0, 5)])
    counted = evaluate(_scorer(8, absent=[5]), graph, "test")
    dropped = evaluate(_scorer(8, absent=[5]), graph, "test", missing="drop")
    assert dropped["overall"]["count"] == 4 and dropped["setup"]["dropped_queries"] == 2
    assert dropped["overall"]["mrr"] > counted["overall"]["mrr"]
    assert "2 queries touching entities with no representation DROPPED" in format_metrics(dropped)
    with pytest.raises(InputError, match="1 test triple"):
        evaluate(_scorer(8, absent=[5]), graph, "test", missing="error")


def test_a_split_with_nothing_to_score_is_an_error(tmp_path):
    graph = _graph(tmp_path, [(4, 0, 5), (5, 0, 6)])
    for missing in ("worst", "drop"):
        with pytest.raises(InputError, match="no query that can be scored"):
            evaluate(_scorer(8, absent=[5]), graph, "test", missing=missing)
    with pytest.raises(InputError, match="valid split has no triples"):
        evaluate(_scorer(8, absent=[]), graph, "valid")


def _typed_graph(tmp_path, test):
    """Artworks e0..e3 (e3 in test only), artists e4..e6 (e6 in test only), a style e7."""
    from tests.conftest import triples_frame
    from vlkge.graph import write_graph

    base = make_graph(tmp_path / "base", {"train": [(0, 0, 4)], "valid": [], "test": []}, 8, 2)
    types = ["artwork"] * 4 + ["artist"] * 3 + ["style"]
    entities = base.entities.with_columns(type=pl.Series(types))
    triples = {"train": [(0, 0, 4), (1, 0, 5), (0, 1, 7)], "valid": [(2, 0, 5)], "test": test}
    meta = {"dataset": "typed", "protocol": {"candidate_pools": "per_relation", "directions": "tail"}}
    return write_graph(tmp_path / "typed", entities, base.relations, triples_frame(triples), meta)


def test_candidate_pools_use_no_test_labels(tmp_path):
    graph = _typed_graph(tmp_path, [(3, 0, 6), (3, 1, 6)])
    heads, tails = candidate_pools(graph)
    # r0 (artwork → artist): every artist, e6 included though it is a tail in test only
    assert tails[0].nonzero().flatten().tolist() == [4, 5, 6]
    assert heads[0].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert tails[1].nonzero().flatten().tolist() == [7]  # r1 (→ style): styles only
    other = _typed_graph(tmp_path / "other", [(2, 1, 7)])
    assert all(torch.equal(a, b) for a, b in zip(candidate_pools(other), (heads, tails), strict=True))
    # (e3, r1, e6): an artist is no style: outside r1's pool, a counted miss
    n = graph.num_entities
    model = FixedScorer(torch.rand(n, 2, n), torch.rand(n, 2, n))
    metrics = evaluate(model, graph, "test")
    assert metrics["setup"]["outside_pool_queries"] == 1
    assert metrics["per_relation"]["r1"]["mrr"] == 0.5  # below the pool's one style, e7
    assert "1 answers outside their candidate pool" in format_metrics(metrics)

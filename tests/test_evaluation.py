"""Filtered ranking: per-direction filters, realistic ties, paper protocol, pools, exclusions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import make_graph
from vlkge.evaluation import evaluate, metrics_of, rank_triples
from vlkge.ranking import FilterIndex, Filters
from vlkge.representations import StructuralEmbedding


class FixedScorer(nn.Module):
    """A scorer whose 1-vs-all scores are given tables: tail[h, r] → [N], head[t, r] → [N]."""

    def __init__(self, tail_scores: torch.Tensor, head_scores: torch.Tensor):
        super().__init__()
        self.tail_scores, self.head_scores = tail_scores, head_scores
        self.entity = StructuralEmbedding(tail_scores.shape[-1], 1)  # the candidates are ignored

    def score_tails(self, h, r, candidates, among=None):
        scores = self.tail_scores[h, r]
        return scores if among is None else scores[:, among]  # per-relation pools: their columns

    def score_heads(self, r, t, candidates, among=None):
        scores = self.head_scores[t, r]
        return scores if among is None else scores[:, among]


def test_filter_index_lookup_returns_every_answer():
    index = FilterIndex(np.array([5, 1, 5, 3, 5]), np.array([7, 2, 8, 0, 7]))
    rows, answers = index.lookup(torch.tensor([5, 4, 1]))
    got = sorted(zip(rows.tolist(), answers.tolist(), strict=True))
    assert got == [(0, 7), (0, 8), (2, 2)]


def test_filtered_rank_uses_the_right_direction(tmp_path):
    # e0 -r0-> e1 (test), e0 -r0-> e2 (train), e3 -r0-> e1 (train), e4 -r0-> e0 (train)
    graph = make_graph(
        tmp_path / "g",
        {"train": [(0, 0, 2), (3, 0, 1), (4, 0, 0)], "valid": [], "test": [(0, 0, 1)]},
        num_entities=5,
        num_relations=1,
    )
    n = 5
    tail = torch.zeros(n, 1, n)
    head = torch.zeros(n, 1, n)
    # tail query (e0, r0, ?): scores e0..e4; the answer e1 scores 0.5, e2 (a train tail) 0.9,
    # e0 0.8, e4 0.85 (x with (x, r0, e0) true: filtered only by the paper's shared key)
    tail[0, 0] = torch.tensor([0.8, 0.5, 0.9, 0.2, 0.85])
    # head query (?, r0, e1): the answer e0 scores 0.3; e3 (a train head) 0.9; e2 0.6
    head[1, 0] = torch.tensor([0.3, 0.0, 0.6, 0.9, 0.1])
    model = FixedScorer(tail, head)
    filters = Filters.build(graph.all_triples(), 1, "correct")
    result = rank_triples(model, graph.split("test"), filters, num_relations=1)
    by_direction = dict(zip(result.direction.tolist(), result.rank.tolist(), strict=True))
    assert by_direction[1] == 3.0  # tail: e2 filtered, e0 and e4 still above
    assert by_direction[0] == 2.0  # head: e3 filtered, e2 (0.6) still above
    paper = Filters.build(graph.all_triples(), 1, "paper")
    result = rank_triples(model, graph.split("test"), paper, num_relations=1)
    by_direction = dict(zip(result.direction.tolist(), result.rank.tolist(), strict=True))
    # the shared key (e0, r0) also holds e4 from (e4, r0, e0): over-filtered away
    assert by_direction[1] == 2.0


def test_ties_are_ranked_realistically(tmp_path):
    graph = make_graph(tmp_path / "g", {"train": [(0, 0, 1)], "valid": [], "test": [(0, 0, 2)]}, 6, 1)
    tail = torch.zeros(6, 1, 6)
    tail[0, 0] = torch.tensor([0.5, 0.1, 0.5, 0.5, 0.9, 0.5])  # answer e2 ties with e0, e3, e5
    model = FixedScorer(tail, torch.zeros(6, 1, 6))
    filters = Filters.build(graph.all_triples(), 1)
    result = rank_triples(model, graph.split("test"), filters, num_relations=1, directions="tail")
    assert result.optimistic.tolist() == [2]  # only e4 strictly better
    assert result.pessimistic.tolist() == [5]  # e4 and the three ties
    assert result.rank.tolist() == [3.5]


def test_constant_scores_do_not_give_rank_one(tmp_path):
    graph = make_graph(tmp_path / "g", {"train": [(0, 0, 1)], "valid": [], "test": [(1, 0, 2)]}, 10, 1)
    model = FixedScorer(torch.zeros(10, 1, 10), torch.zeros(10, 1, 10))
    metrics = evaluate(model, graph, "test")
    assert metrics["overall"]["mrr"] == pytest.approx(1 / 5.5)  # (1 + 10) / 2 over 10 candidates


def test_candidate_pools_and_excluded_relations(tmp_path):
    graph = make_graph(
        tmp_path / "g",
        {"train": [(0, 0, 1), (2, 1, 3)], "valid": [], "test": [(0, 0, 4), (2, 1, 4)]},
        num_entities=6,
        num_relations=2,
        protocol={
            "candidate_pools": "per_relation",
            "directions": "tail",
            "excluded_relations": ["r1"],
        },
    )
    tail = torch.zeros(6, 2, 6)
    tail[0, 0] = torch.tensor([0.0, 0.0, 0.9, 0.8, 0.5, 0.7])  # e2, e3, e5 are not tails of r0
    model = FixedScorer(tail, torch.zeros(6, 2, 6))
    metrics = evaluate(model, graph, "test")
    assert metrics["overall"]["count"] == 1  # r1 excluded, tail direction only
    assert "head" not in metrics
    # the pool of r0 tails comes from train and valid only: {e1}; the answer e4 (a tail in test
    # only) is outside it: a miss at the worst rank (1 + the unfiltered pool: e1 is filtered)
    assert metrics["setup"]["outside_pool_queries"] == 1
    unpooled = evaluate(model, graph, "test", candidate_pools_mode="all")
    assert unpooled["overall"]["mrr"] == pytest.approx(1 / 4)
    assert unpooled["setup"]["outside_pool_queries"] == 0


def test_nan_scores_are_an_error(tmp_path):
    graph = make_graph(tmp_path / "g", {"train": [(0, 0, 1)], "valid": [], "test": [(1, 0, 2)]}, 4, 1)
    tail = torch.full((4, 1, 4), float("nan"))
    with pytest.raises(FloatingPointError):
        evaluate(FixedScorer(tail, tail), graph, "test")


def test_metrics_of_known_ranks():
    m = metrics_of(torch.tensor([1.0, 2.0, 4.0, 20.0], dtype=torch.float64))
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4)
    assert (m["hits@1"], m["hits@3"], m["hits@10"]) == (0.25, 0.5, 0.75)

"""Probe (not in the product): does voting with the training relations of an entity's nearest
feature neighbours add to the nearest-neighbour lookup, untrained?

    score(a, r, c) = sim(a, c) + λ · Σ_{n ∈ kNN_k(a)} max(sim(a, n), 0) · [(n, r, c) ∈ train]

a: the query's given entity; kNN_k(a): its k most similar entities among those with training
triples (a itself excluded); sim: the lookup's similarity (`vlkge zeroshot --mode neighbours`: mean
cosine over shared feature modalities). λ = 0 is the lookup itself. Head queries vote with
(c, r, n) alike. Read on valid only (choices are made there):

    python benchmarks/neighbour_votes.py data/wikiart-v1 --weights 0,0.2,1 [--k 10] [--split valid]

Prints MRR overall and for queries touching seen / unseen entities, per weight.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from vlkge.evaluation import evaluate
from vlkge.graph import read_graph
from vlkge.neighbours import NeighbourScorer, load_scorer


class Adjacency:
    """Training triples as CSR lists: (entity, relation) → the entities on the other side."""

    def __init__(self, source: Tensor, relation: Tensor, target: Tensor, n: int, r: int) -> None:
        key = source * r + relation
        order = torch.argsort(key)
        self.offsets = torch.zeros(n * r + 1, dtype=torch.long)
        self.offsets[1:] = torch.bincount(key, minlength=n * r).cumsum(0)
        self.targets, self.num_relations = target[order], r

    def votes(self, neighbours: Tensor, weights: Tensor, relation: Tensor, width: int) -> Tensor:
        """neighbours, weights [B, k], relation [B] → [B, width]: Σ weight over the neighbours
        whose (neighbour, relation) list holds the column."""
        key = (neighbours * self.num_relations + relation.unsqueeze(1)).reshape(-1)
        start, count = self.offsets[key], self.offsets[key + 1] - self.offsets[key]
        b, k = neighbours.shape
        row = torch.arange(b).repeat_interleave(k).repeat_interleave(count)
        within = torch.arange(int(count.sum())) - (torch.cumsum(count, 0) - count).repeat_interleave(count)
        column = self.targets[start.repeat_interleave(count) + within]
        out = torch.zeros(b, width)
        out.index_put_((row, column), weights.reshape(-1).repeat_interleave(count), accumulate=True)
        return out


class VotingLookup(nn.Module):
    """The lookup plus λ × the neighbours' votes, in the evaluation's 1-vs-all form."""

    def __init__(self, lookup: NeighbourScorer, train: Tensor, n: int, r: int, weight: float, k: int) -> None:
        super().__init__()
        self.lookup, self.entity, self.weight, self.k = lookup, lookup.entity, weight, k
        self.voters = torch.unique(torch.cat([train[:, 0], train[:, 2]]))
        self.tails = Adjacency(train[:, 0], train[:, 1], train[:, 2], n, r)
        self.heads = Adjacency(train[:, 2], train[:, 1], train[:, 0], n, r)
        self.n = n

    def _scores(self, anchor: Tensor, r: Tensor, adjacency: Adjacency, among: Tensor | None) -> Tensor:
        scores = self.lookup.similarity(anchor, among)
        if not self.weight:
            return scores
        near = self.lookup.similarity(anchor, self.voters)  # the anchor itself scores SELF (lowest)
        weights, index = near.topk(self.k, dim=1)
        votes = adjacency.votes(self.voters[index], weights.clamp_min(0.0), r, self.n)
        return scores + self.weight * (votes if among is None else votes[:, among])

    def score_tails(
        self, h: Tensor, r: Tensor, candidates: Tensor | None = None, among: Tensor | None = None
    ) -> Tensor:
        return self._scores(h, r, self.tails, among)

    def score_heads(
        self, r: Tensor, t: Tensor, candidates: Tensor | None = None, among: Tensor | None = None
    ) -> Tensor:
        return self._scores(t, r, self.heads, among)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path, help="data/<dataset> (graph/ and features/<store>/)")
    parser.add_argument("--store", default="lite")
    parser.add_argument("--modalities", default="text")
    parser.add_argument("--weights", default="0,0.2,1")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    graph = read_graph(args.dataset_dir / "graph")
    lookup = load_scorer(graph, args.dataset_dir / "features" / args.store, args.modalities)
    train = torch.as_tensor(graph.triples["train"], dtype=torch.long)
    for weight in (float(w) for w in args.weights.split(",")):
        start = time.perf_counter()
        scorer = VotingLookup(lookup, train, graph.num_entities, graph.num_relations, weight, args.k)
        metrics = evaluate(scorer, graph, args.split)
        entities = metrics.get("entities", {})
        groups = {g: round(m["mrr"], 4) for g, m in entities.items() if isinstance(m, dict) and "mrr" in m}
        seconds = time.perf_counter() - start
        print(f"λ {weight}: MRR {metrics['overall']['mrr']:.4f} {groups} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()

"""The neighbour votes' table (vlkge/votes.py) on a large graph: the inverted file's time and
recall against exact search, measured in the same run (exact on a random sample of anchors,
its time scaled to all of them).

    python benchmarks/neighbour_table.py data/wikiart-v1 [--store lite] [--modalities structural,textual]
        [--k 10] [--sample 2000] [--threads 2]

Prints seconds for the inverted file over every entity, seconds for exact search over the
sample and its estimate for all, and the recall of the sample's exact k nearest voters.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vlkge.config import load_config
from vlkge.features.inputs import load_entity_inputs
from vlkge.graph import read_graph
from vlkge.model import build_model
from vlkge.votes import _approximate, voters_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("--store", default="lite")
    parser.add_argument("--modalities", default="structural,textual")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    graph = read_graph(args.dataset_dir / "graph")
    config = load_config(
        None,
        {
            "model": {
                "modalities": args.modalities.split(","),
                "features": args.store,
                "votes": 0.0,
                "mentions": 0.0,
            }
        },
    )
    inputs = load_entity_inputs(graph, config, args.dataset_dir / "features" / args.store)
    reps = build_model(config, graph.num_entities, graph.num_relations, inputs).entity
    voters = voters_of(graph.split("train"))
    n = graph.num_entities
    start = time.perf_counter()
    approximate, _ = _approximate(reps, voters, args.k)
    approximate_s = time.perf_counter() - start
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: args.sample]

    start = time.perf_counter()
    exact = []
    for at in range(0, len(sample), 1024):
        anchor = sample[at : at + 1024]
        block = reps.similarity_to_all(anchor, voters)
        block.masked_fill_(anchor.unsqueeze(1) == voters.unsqueeze(0), -float("inf"))
        exact.append(voters[block.topk(args.k, dim=1).indices])
    exact = torch.cat(exact)
    exact_s = time.perf_counter() - start
    hits = sum(
        len(set(exact[i].tolist()) & set(approximate[e].tolist())) for i, e in enumerate(sample.tolist())
    )
    print(f"{n:,} entities, {len(voters):,} voters, k {args.k}, {args.threads} threads")
    print(f"inverted file, every entity: {approximate_s:.1f} s")
    print(f"exact, {len(sample):,} sampled: {exact_s:.1f} s → all ≈ {exact_s * n / len(sample):.0f} s")
    print(f"recall of the exact {args.k} (sample): {hits / (len(sample) * args.k):.3f}")


if __name__ == "__main__":
    main()

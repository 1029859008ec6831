"""Multimodal training step: the batch's rows only (``MultimodalRepresentation.rows``, what the
trainer does) against the full entity table (``all()``, what it did before), same run, same batches.

Usage: python benchmarks/bench_batch_rows.py [--entities 180000] [--feature-dim 512] [--dim 128]
       [--negatives 32] [--batch-sizes 256,1024,4096] [--steps 5] [--threads 1]

Random frozen text features for every entity (WikiArt-v1 size by default: ~180k entities, each
with a title or name text) plus a structural row for 90 % of them; DistMult scores, softplus loss,
forward + backward. Prints ms per step (median), the distinct entities a batch touches, and the
speed-up of the rows path.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vlkge.features.inputs import EntityInputs
from vlkge.interactions import make_interaction
from vlkge.model import KGEModel
from vlkge.representations import MultimodalRepresentation, renumber_entities
from vlkge.training import softplus_loss


def build(n: int, feature_dim: int, dim: int) -> KGEModel:
    g = torch.Generator().manual_seed(0)
    inputs = EntityInputs(num_entities=n)
    inputs.features["textual"] = torch.randn(n, feature_dim, generator=g)
    inputs.present["textual"] = torch.ones(n, dtype=torch.bool)
    inputs.has_structure = torch.rand(n, generator=g) < 0.9
    interaction = make_interaction("distmult", dim=dim)
    reps = MultimodalRepresentation(inputs, ("structural", "textual"), dim, interaction.entity_factor)
    return KGEModel(n, 20, interaction, entity=reps)


def step(model: KGEModel, batch: torch.Tensor, replacement: torch.Tensor, corrupt: torch.Tensor, rows: bool):
    """One forward + backward; → distinct entities represented."""
    model.zero_grad(set_to_none=True)
    if rows:
        ids, batch, replacement = renumber_entities(batch, replacement)
        table = model.entity.rows(ids)
    else:
        table = model.entity.all()
    positive = model.score_hrt(batch[:, 0], batch[:, 1], batch[:, 2], table)
    negative = model.score_negatives(batch, replacement, corrupt, table)
    softplus_loss(positive, negative, torch.ones_like(negative)).backward()
    return len(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=180_000)
    parser.add_argument("--feature-dim", type=int, default=512)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--negatives", type=int, default=32)
    parser.add_argument("--batch-sizes", default="256,1024,4096")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.entities
    model = build(n, args.feature_dim, args.dim)
    g = torch.Generator().manual_seed(1)
    print(f"{n:,} entities, {args.feature_dim}-d text features → dim {args.dim}, K = {args.negatives}")
    print("| batch | distinct entities | all() ms/step | rows ms/step | speed-up |")
    print("|---|---|---|---|---|")
    for size in map(int, args.batch_sizes.split(",")):
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.steps):
            batch = torch.stack(
                [
                    torch.randint(0, n, (size,), generator=g),
                    torch.randint(0, 20, (size,), generator=g),
                    torch.randint(0, n, (size,), generator=g),
                ],
                dim=1,
            )
            replacement = torch.randint(0, n, (size, args.negatives), generator=g)
            corrupt = torch.rand(size, args.negatives, generator=g) < 0.5
            for rows in (False, True):  # alternate: both see the same machine load
                t = time.perf_counter()
                count = step(model, batch, replacement, corrupt, rows)
                times[rows].append(time.perf_counter() - t)
            touched = count  # the rows path ran last
        full, part = statistics.median(times[False]) * 1e3, statistics.median(times[True]) * 1e3
        print(f"| {size:,} | {touched:,} | {full:.0f} | {part:.0f} | {full / part:.1f}× |")


if __name__ == "__main__":
    main()

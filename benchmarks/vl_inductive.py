"""Make the inductive variant of a graph: 10% of its entities and every triple touching them held
out of training (moved to test), sharing the original graph's feature stores.

    python benchmarks/vl_inductive.py [--dataset wn9-img] [--fraction 0.1] [--seed 0]
    vlkge train wn9-img-ind10 --frozen --modalities structural,visual,textual --out ind-vl-distmult
    vlkge train wn9-img-ind10 --out ind-distmult        # structure only: what it can do with them
    vlkge evaluate ind-vl-distmult --dataset wn9-img-ind10  # prints seen / unseen entities apart

The entity ids and texts are unchanged, so the original store fits the new graph.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vlkge import paths
from vlkge.graph import read_graph
from vlkge.holdout import hold_out_entities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--dataset", default="wn9-img")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    graph = read_graph(paths.graph_dir(args.data_dir, args.dataset))
    name = f"{args.dataset}-ind{round(args.fraction * 100)}"
    out = hold_out_entities(graph, args.fraction, paths.graph_dir(args.data_dir, name), seed=args.seed)
    features = paths.features_dir(args.data_dir, name)
    if not features.exists():
        os.symlink(Path("..") / paths.dataset_slug(args.dataset) / "features", features)
    print(f"{name}: {out.meta['holdout']['entities']} entities held out; triples {out.summary()['triples']}")


if __name__ == "__main__":
    main()

"""Make the inductive variant of a graph: 10% of its entities held out of training, half of them
for valid and half for test (every triple touching a test-held entity moved to test, else touching
a valid-held one to valid), sharing the original graph's feature stores; then print the commands
that train and evaluate on it.

    python benchmarks/vl_inductive.py [--dataset wn9-img] [--fraction 0.1] [--seed 0] [--store lite]

The entity ids, texts and images are unchanged, so the original store fits the new graph (linked
as ``data/<dataset>-ind10/features``). Valid holds queries about entities absent from train too, so
early stopping sees the case test judges; ``meta.json`` lists every entity absent from train.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vlkge import paths
from vlkge.graph import read_graph
from vlkge.holdout import hold_out_entities


def commands(name: str, store: str, data_dir: Path) -> list[str]:
    """What to run on the variant ``name``: the features-only baseline, a VL run and a
    structure-only run, each evaluated with seen / unseen entities apart."""
    cli = "vlkge" if data_dir == Path("data") else f"vlkge --data-dir {data_dir}"
    vl = "--frozen --modalities structural,visual,textual"
    return [
        f"{cli} zeroshot {name} --mode neighbours --features {store} --modalities {m} --split {split}"
        for split in ("valid", "test")
        for m in ("text", "image", "both")
    ] + [
        f"{cli} train {name} {vl} --features {store} --out ind-vl-distmult",
        f"{cli} evaluate ind-vl-distmult --dataset {name}   # + the neighbours baseline, same queries",
        f"{cli} train {name} --out ind-distmult   # structure only: what it can do with unseen entities",
        f"{cli} evaluate ind-distmult --dataset {name}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--dataset", default="wn9-img")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default="lite", help="feature store named in the printed commands")
    args = parser.parse_args()
    graph = read_graph(paths.graph_dir(args.data_dir, args.dataset))
    name = f"{args.dataset}-ind{round(args.fraction * 100)}"
    out = hold_out_entities(graph, args.fraction, paths.graph_dir(args.data_dir, name), seed=args.seed)
    features = paths.features_dir(args.data_dir, name)
    if not features.exists():
        os.symlink(Path("..") / paths.dataset_slug(args.dataset) / "features", features)
    info = out.meta["holdout"]
    absent = info["absent_from_train"]
    print(
        f"{name}: held out {info['held_out']['valid']} entities for valid, {info['held_out']['test']} for "
        f"test; {absent['count']} absent from train ({absent['not_drawn']} of them not drawn: every "
        f"triple of theirs touched a held-out entity); triples {out.summary()['triples']}"
    )
    print("then run:")
    for line in commands(name, args.store, args.data_dir):
        print(f"  {line}")


if __name__ == "__main__":
    main()

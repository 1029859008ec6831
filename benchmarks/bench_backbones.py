"""Training seconds per epoch and filtered-evaluation queries per second, per backbone, on WN9-IMG.

Usage: python benchmarks/bench_backbones.py [--epochs 2] [--backbones transe,distmult,complex,rotate]
       [--source ../shared/data/wn9_img] [--threads 0]

The graph is built from the WN9-IMG mirror with the project's own crawl and clean into a temporary
directory; the configuration is the paper's (dim 768, batch 512, 100 negatives, Adagrad 0.1).
Figures are medians over the epochs run; the first epoch is reported apart (warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vlkge import api
from vlkge.config import load_config
from vlkge.evaluation import evaluate
from vlkge.training import Trainer

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backbones", default="transe,distmult,complex,rotate")
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "wn9_img"))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(overrides={"crawl": {"source": args.source}})
        graph = api.prepare("wn9-img", config, data_dir=tmp)
        queries = 2 * len(graph.triples["test"])
        print(f"WN9-IMG: {graph.num_entities} entities, {len(graph.triples['train'])} train triples;")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; paper config, dim 768\n")
        header = f"{'backbone':10s} {'epoch 1 s':>10s} {'s/epoch':>9s} {'triples/s':>10s} "
        print(header + f"{'eval s':>8s} {'queries/s':>10s}")
        for name in args.backbones.split(","):
            params = load_config(
                overrides={
                    "model": {"backbone": name, "dim": 768},
                    "train": {"epochs": args.epochs, "eval_every": 10_000, "device": "cpu"},
                }
            )
            trainer = Trainer(graph, params, Path(tmp) / "runs" / name)
            seconds = [trainer.train_epoch(e, show=False)["seconds"] for e in range(1, args.epochs + 1)]
            steady = statistics.median(seconds[1:] or seconds)
            evaluate(trainer.model, graph, "valid")  # warm-up
            start = time.perf_counter()
            evaluate(trainer.model, graph, "test")
            eval_s = time.perf_counter() - start
            rate = len(graph.triples["train"]) / steady
            print(
                f"{name:10s} {seconds[0]:10.2f} {steady:9.2f} {rate:10,.0f} "
                f"{eval_s:8.2f} {queries / eval_s:10,.0f}"
            )


if __name__ == "__main__":
    main()

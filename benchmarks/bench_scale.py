"""How training and evaluation time and memory grow with the graph, up to WikiArt-v2 size.

Usage: python benchmarks/bench_scale.py [--sizes 10000:360000,50000:1800000,224166:8000000,...]
           [--wikiart] [--batches 30] [--test 2000] [--dim 768] [--memory-mib 1024] [--threads 0]

Each size ``ENTITIES:TRIPLES`` is a synthetic graph (pipeline/synthetic.py ``write_scale_graph``:
power-law entity degrees, 22 relations, tail-direction evaluation against all entities), run in
its own process so the peak resident memory is that size's own. The paper's training config
(dim 768, batch 512, 100 negatives, Adagrad 0.1; sparse row-wise updates switch on by themselves
on large tables) is timed over ``--batches`` steps after 3 warm-up steps and extrapolated to the
full epoch (the table says so); the filtered evaluation of the ``--test`` tail queries runs in
full, chunked to ``--memory-mib`` by :func:`vlkge.evaluation.chunk_rows`.

``--wikiart`` then runs the WikiArt-v2-size case (224,166 entities, 8M train triples, 768-d random
features held for 216,564 of them, the resident memory a multimodal run adds) and checks the
peak stays within 8 GiB.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from vlkge.pipeline.synthetic import random_features, write_scale_graph

from vlkge.evaluation import chunk_rows, evaluate
from vlkge.graph import read_graph
from vlkge.training import Trainer

WIKIART_V2 = (224_166, 8_000_000, 216_564)  # entities, train triples, entities with features
GIB = 1024


def run_one(args: argparse.Namespace) -> dict:
    """One size, in this process: train ``batches`` steps and evaluate the test split."""
    if args.threads:
        torch.set_num_threads(args.threads)
    graph = read_graph(args.one)
    features = None
    if args.features:
        _, values = random_features(graph.num_entities, args.dim, args.features / graph.num_entities)
        features = torch.from_numpy(values)  # resident, as a multimodal run holds them
    params = common.paper_config("distmult").updated({"model": {"dim": args.dim}})
    start = time.perf_counter()
    trainer = Trainer(graph, params, Path(args.workdir) / "run")
    setup_s = time.perf_counter() - start
    triples = trainer._epoch_triples()
    size = trainer.spec["batch_size"]
    model, opt = trainer.model, trainer.optimizer
    seconds = []
    for i in range(3 + args.batches):
        batch = triples[i * size : (i + 1) * size]
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = trainer._batch_loss(batch)
        loss.backward()
        opt.step()
        seconds.append(time.perf_counter() - t)
    per_batch = sorted(seconds[3:])[len(seconds[3:]) // 2]
    epoch_batches = math.ceil(len(trainer.train) / size)
    start = time.perf_counter()
    metrics = evaluate(model, graph, "test", directions="tail", memory_mib=args.memory_mib)
    eval_s = time.perf_counter() - start
    return {
        "entities": graph.num_entities,
        "train": len(trainer.train),
        "sparse": bool(getattr(model.entity, "sparse", False)),
        "setup_s": setup_s,
        "ms_per_batch": per_batch * 1e3,
        "epoch_s_est": per_batch * epoch_batches,
        "queries": metrics["overall"]["count"],
        "eval_s": eval_s,
        "chunk": chunk_rows(graph.num_entities, 1024, args.memory_mib),
        "peak_mib": common.peak_rss_mib(),
        "features_mib": 0 if features is None else features.numel() * 4 / 2**20,
        "mrr": metrics["overall"]["mrr"],
    }


def measure(entities: int, triples: int, args: argparse.Namespace, tmp: Path, features: int = 0) -> dict:
    graph_dir = tmp / f"graph-{entities}-{triples}"
    start = time.perf_counter()
    if not graph_dir.is_dir():
        write_scale_graph(graph_dir, entities=entities, triples=triples, test=args.test, valid=args.test)
    generate_s = time.perf_counter() - start
    command = [sys.executable, __file__, "--one", str(graph_dir), "--workdir", str(tmp)]
    command += ["--batches", str(args.batches), "--dim", str(args.dim), "--memory-mib", str(args.memory_mib)]
    command += ["--threads", str(args.threads), "--features", str(features)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"size {entities}: {done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["generate_s"] = generate_s
    return row


HEADER = (
    f"{'entities':>9s} {'train':>9s} {'sparse':>6s} {'ms/batch':>9s} {'epoch s*':>9s} "
    f"{'eval q':>7s} {'chunk':>6s} {'eval s':>8s} {'q/s':>7s} {'peak MiB':>9s}"
)


def show(row: dict) -> None:
    print(
        f"{row['entities']:9,d} {row['train']:9,d} {'yes' if row['sparse'] else 'no':>6s} "
        f"{row['ms_per_batch']:9.1f} {row['epoch_s_est']:9.0f} {row['queries']:7,d} {row['chunk']:6d} "
        f"{row['eval_s']:8.1f} {row['queries'] / row['eval_s']:7.0f} {row['peak_mib']:9.0f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000:360000,50000:1800000,224166:8000000,1000000:8000000")
    parser.add_argument("--wikiart", action="store_true", help="then the WikiArt-v2-size run")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--test", type=int, default=2000, help="tail queries evaluated (and valid size)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--memory-mib", type=float, default=1024.0, help="evaluation chunk budget")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--features", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args)))
        return
    print(
        f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads; dim {args.dim}, "
        f"batch 512, 100 negatives, Adagrad 0.1; eval budget {args.memory_mib:.0f} MiB"
    )
    print("* epoch s: median step time × steps per epoch (extrapolated from --batches steps)\n")
    print(HEADER)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in filter(None, args.sizes.split(",")):
            entities, triples = (int(x) for x in spec.split(":"))
            rows.append(measure(entities, triples, args, Path(tmp)))
            show(rows[-1])
        if args.wikiart:
            entities, triples, featured = WIKIART_V2
            row = measure(entities, triples, args, Path(tmp), features=featured)
            rows.append(row)
            show(row)
            within = row["peak_mib"] <= 8 * GIB
            print(
                f"\nWikiArt-v2 size with features: peak {row['peak_mib'] / GIB:.2f} GiB "
                f"({row['features_mib']:.0f} MiB of features resident): "
                f"{'within' if within else 'OVER'} 8 GiB"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

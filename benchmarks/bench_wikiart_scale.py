"""WikiArt-MKG at full scale: clean time, one training epoch and a full valid evaluation, peak memory.

Usage: python benchmarks/bench_wikiart_scale.py [--version wikiart-v2] [--source ../shared/data/wikiart]
       [--modalities structural | structural,textual] [--encoder tiny-clip] [--dim 256]
       [--negatives 32] [--batch-size 4096] [--threads 2] [--work DIR]

Each step runs in its own process so that its peak resident memory (ru_maxrss) is its own:

1. ``clean``: crawl (hardlinks) and clean the full scrape (~174k artworks) with the project's
   adapter; prints seconds, triples per split and peak memory.
2. ``encode`` (only with a feature modality): the feature store, made once with ``--encoder`` —
   ``tiny-clip`` gives real-format random features in about a minute; later runs reuse it (the
   cached features the training reads). Not part of the timed training.
3. ``train``: one epoch of DistMult (VL-DistMult with ``--modalities structural,textual``) from
   the graph and the cached features, then a full filtered evaluation of the valid split with the
   graph's protocol (tail queries, per-relation pools); prints seconds and peak memory.

With a feature modality the graph is built with ``clean.wikiart.artwork_text: true`` (artworks
read their title), since the scrape has no artwork images.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB


def params_for(args: argparse.Namespace):
    from vlkge.config import load_config

    modalities = [m.strip() for m in args.modalities.split(",")]
    multimodal = modalities != ["structural"]
    return load_config(
        REPO / "vlkge" / "defaults.yaml",
        {
            "dataset": args.version,
            "crawl": {"source": args.source},
            "clean": {"wikiart": {"artwork_text": multimodal}},
            "encode": {"model": args.encoder, "device": "cpu", "workers": 0},
            "model": {"backbone": "distmult", "dim": args.dim, "modalities": modalities},
            "train": {
                "epochs": 1,
                "batch_size": args.batch_size,
                "negatives": args.negatives,
                "device": "cpu",
                "threads": args.threads,
                "eval_every": 10_000,
            },
            "evaluate": {"batch_size": 1024},
        },
    )


def stage_clean(args: argparse.Namespace) -> dict:
    from vlkge import api

    config = params_for(args)
    start = time.perf_counter()
    api.crawl(args.version, config, args.work)
    crawled = time.perf_counter()
    graph = api.clean(args.version, config, args.work)
    done = time.perf_counter()
    return {
        "crawl_s": round(crawled - start, 2),
        "clean_s": round(done - crawled, 2),
        "summary": graph.summary(),
        "splits": graph.meta["clean"]["splits"],
        "peak_gib": round(peak_gib(), 2),
    }


def stage_encode(args: argparse.Namespace) -> dict:
    from vlkge import api

    config = params_for(args)
    start = time.perf_counter()
    results = api.encode(args.version, config, args.work, progress=False, log=lambda _: None)
    return {
        "encode_s": round(time.perf_counter() - start, 1),
        "rows": {r.modality: r.rows_written for r in results},
        "peak_gib": round(peak_gib(), 2),
    }


def stage_train(args: argparse.Namespace) -> dict:
    import torch

    from vlkge.evaluation import evaluate
    from vlkge.graph import read_graph
    from vlkge.paths import graph_dir
    from vlkge.training import Trainer

    torch.set_num_threads(args.threads)
    params = params_for(args)
    graph = read_graph(graph_dir(args.work, args.version))
    start = time.perf_counter()
    trainer = Trainer(graph, params, Path(args.work) / "runs" / "bench")
    built = time.perf_counter()
    epoch = trainer.train_epoch(1, show=True)
    trained = time.perf_counter()
    result = evaluate(trainer.model, graph, "valid", batch_size=params.evaluate.batch_size)
    evaluated = time.perf_counter()
    return {
        "setup_s": round(built - start, 1),
        "epoch_s": round(trained - built, 1),
        "epoch_triples": epoch["triples"],
        "valid_eval_s": round(evaluated - trained, 1),
        "valid_queries": result["overall"]["count"],
        "valid_mrr": round(result["overall"]["mrr"], 4),
        "unrepresented_queries": result["setup"].get("unrepresented_queries", 0),
        "peak_gib": round(peak_gib(), 2),
    }


STAGES = {"clean": stage_clean, "encode": stage_encode, "train": stage_train}


def run_child(stage: str, argv: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--stage", stage, *argv], stdout=subprocess.PIPE, text=True, cwd=REPO
    )  # stderr (progress bars) passes through
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="wikiart-v2", choices=("wikiart-v1", "wikiart-v2"))
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "wikiart"))
    parser.add_argument("--modalities", default="structural")
    parser.add_argument("--encoder", default="tiny-clip")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=None, help="Data directory to keep (default: temp).")
    parser.add_argument("--stage", choices=tuple(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(STAGES[args.stage](args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        argv = [*strip_work(sys.argv[1:]), "--work", work]
        clean = run_child("clean", argv)
        t = clean["summary"]["triples"]
        print(
            f"{args.version}: {clean['summary']['entities']:,} entities, {clean['summary']['relations']} "
            f"relations, triples train {t['train']:,} / valid {t['valid']:,} / test {t['test']:,}"
        )
        for split, counts in clean["splits"].items():
            print(f"  {split}: {counts['entities']:,} entities, {counts['relations']} relations")
        print(f"crawl {clean['crawl_s']} s, clean {clean['clean_s']} s, peak memory {clean['peak_gib']} GiB")
        if args.modalities.strip() != "structural":
            enc = run_child("encode", argv)
            print(f"encode ({args.encoder}, cached once): {enc['encode_s']} s, peak {enc['peak_gib']} GiB")
        train = run_child("train", argv)
        print(
            f"one epoch ({args.modalities}, dim {args.dim}, {args.negatives} negatives, batch "
            f"{args.batch_size}, {args.threads} threads): {train['epoch_s']} s for "
            f"{train['epoch_triples']:,} triples (setup {train['setup_s']} s)"
        )
        print(
            f"full valid evaluation: {train['valid_eval_s']} s for {train['valid_queries']:,} queries "
            f"(MRR {train['valid_mrr']}, {train['unrepresented_queries']} queries without representation)"
        )
        print(f"peak memory of the training process: {train['peak_gib']} GiB")


def strip_work(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--work":
            skip = True
            continue
        if a.startswith("--work="):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    main()

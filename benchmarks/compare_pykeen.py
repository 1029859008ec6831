"""vlkge against PyKEEN on one graph with one configuration, alternating, with the roofline.

Usage (PyKEEN is the ``bench`` extra: ``pip install -e .[bench]``):

    python benchmarks/compare_pykeen.py [--graph data/wn9-img/graph | USER_GRAPH_DIR]
        [--backbones transe,distmult,complex,rotate] [--epochs 2] [--dim 768] [--batch 512]
        [--negatives 100] [--lr 0.1] [--split test] [--threads 0] [--device cpu] [--json out.json]

Each framework runs in its own worker process (so peak memory is each one's own); the parent sends
"train one epoch" and "evaluate" to the two workers in turn — vlkge then PyKEEN, then PyKEEN then
vlkge — so both see the same machine load. Same graph ids, same backbone, dim, batch, K
negatives (head or tail corrupted uniformly), softplus loss, Adagrad and learning rate; neither
side regularises or normalises embeddings (PyKEEN's default regularisers and entity
constrainers are switched off to match). Filtered evaluation is realistic-rank, both
directions, against all entities, filtered with train + valid + test.

Printed per backbone: s/epoch (median; the first epoch is warm-up when more than one), filtered
evaluation seconds, peak resident MiB of the worker, final MRR, the ratios PyKEEN/vlkge, and
vlkge's fraction of this machine's float32 matmul rate (measured in the same run) in training and
in evaluation.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

# PyKEEN's TransE draws entity rows from U(±sqrt(6/dim)); vlkge's default Xavier spans the whole
# table (rows ~sqrt(N/dim) times smaller), which after one epoch alone is a 3x MRR difference.
SAME_INIT_AS_PYKEEN = {"transe": "xavier_embedding"}


# ----------------------------------------------------------------------------- the two workers
class VlkgeRunner:
    def __init__(self, graph_path: str, cfg: dict[str, Any], workdir: str) -> None:
        from vlkge.ranking import Filters
        from vlkge.training import Trainer

        self.graph = common.load_graph(graph_path, Path(workdir))
        params = common.paper_config(
            cfg["backbone"],
            batch_size=cfg["batch"],
            negatives=cfg["negatives"],
            lr=cfg["lr"],
            device=cfg["device"],
        )
        init = SAME_INIT_AS_PYKEEN.get(cfg["backbone"], params.model.init)
        params = params.updated({"model": {"dim": cfg["dim"], "init": init}, "seed": cfg["seed"]})
        self.trainer = Trainer(self.graph, params, Path(workdir) / "vlkge-run")
        self.Filters = Filters

    def train_epoch(self, epoch: int) -> dict[str, float]:
        record = self.trainer.train_epoch(epoch, show=False)
        return {"seconds": record["seconds"], "loss": record["loss"]}

    def evaluate(self, split: str, batch: int) -> dict[str, float]:
        from vlkge.evaluation import evaluate

        start = time.perf_counter()
        metrics = evaluate(self.trainer.model, self.graph, split, batch_size=batch, directions="both")
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "mrr": metrics["overall"]["mrr"], "queries": metrics["overall"]["count"]}


class PykeenRunner:
    def __init__(self, graph_path: str, cfg: dict[str, Any], workdir: str) -> None:
        from pykeen.losses import SoftplusLoss
        from pykeen.models import ComplEx, DistMult, RotatE, TransE
        from pykeen.training import SLCWATrainingLoop
        from pykeen.triples import CoreTriplesFactory

        graph = common.load_graph(graph_path, Path(workdir))
        self.device = torch.device(cfg["device"])
        n, r = graph.num_entities, graph.num_relations
        self.splits = {name: graph.split(name).long() for name in ("train", "valid", "test")}
        self.factory = CoreTriplesFactory.create(self.splits["train"], num_entities=n, num_relations=r)
        plain = {"regularizer": None}
        models = {
            "transe": (TransE, {**plain, "scoring_fct_norm": 2, "entity_constrainer": None}),
            "distmult": (DistMult, {**plain, "entity_constrainer": None}),
            "complex": (ComplEx, plain),
            "rotate": (RotatE, plain),
        }
        cls, kwargs = models[cfg["backbone"]]
        self.model = cls(
            triples_factory=self.factory,
            embedding_dim=cfg["dim"],
            loss=SoftplusLoss(reduction="mean"),
            random_seed=cfg["seed"],
            **kwargs,
        ).to(self.device)
        self.loop = SLCWATrainingLoop(
            model=self.model,
            triples_factory=self.factory,
            optimizer=torch.optim.Adagrad(self.model.get_grad_params(), lr=cfg["lr"]),
            negative_sampler="basic",
            negative_sampler_kwargs={"num_negs_per_pos": cfg["negatives"]},
            automatic_memory_optimization=False,
        )
        self.batch = cfg["batch"]

    def train_epoch(self, epoch: int) -> dict[str, float]:
        start = time.perf_counter()
        losses = self.loop.train(
            triples_factory=self.factory,
            num_epochs=epoch,
            batch_size=self.batch,
            continue_training=epoch > 1,
            use_tqdm=False,
            use_tqdm_batch=False,
        )
        return {"seconds": time.perf_counter() - start, "loss": float(losses[-1])}

    def evaluate(self, split: str, batch: int) -> dict[str, float]:
        from pykeen.evaluation import RankBasedEvaluator

        others = [t for name, t in self.splits.items() if name != split]
        evaluator = RankBasedEvaluator(filtered=True)
        start = time.perf_counter()
        result = evaluator.evaluate(
            self.model,
            self.splits[split],
            batch_size=batch,
            additional_filter_triples=others,
            use_tqdm=False,
        )
        seconds = time.perf_counter() - start
        mrr = float(result.get_metric("both.realistic.inverse_harmonic_mean_rank"))
        return {"seconds": seconds, "mrr": mrr, "queries": 2 * len(self.splits[split])}


RUNNERS = {"vlkge": VlkgeRunner, "pykeen": PykeenRunner}


def _worker(conn, name: str, graph_path: str, cfg: dict[str, Any], threads: int) -> None:
    """One framework in one process: answers ("train", epoch), ("eval", split, batch), ("stop",)."""
    if threads:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            runner = RUNNERS[name](graph_path, cfg, workdir)
            conn.send({"ready": True, "rss_mib": common.peak_rss_mib()})
            while True:
                msg = conn.recv()
                if msg[0] == "stop":
                    break
                out = runner.train_epoch(msg[1]) if msg[0] == "train" else runner.evaluate(msg[1], msg[2])
                out["peak_mib"] = common.peak_rss_mib()
                if cfg["device"].startswith("cuda"):
                    out["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
                conn.send(out)
    except Exception as exc:  # report, do not hang the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


class Worker:
    def __init__(self, name: str, graph_path: str, cfg: dict[str, Any], threads: int) -> None:
        ctx = mp.get_context("spawn")
        self.name = name
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, name, graph_path, cfg, threads), daemon=True)
        self.proc.start()
        self._reply()

    def _reply(self) -> dict[str, Any]:
        out = self.conn.recv()
        if "error" in out:
            raise RuntimeError(f"{self.name}: {out['error']}")
        return out

    def ask(self, *msg: Any) -> dict[str, Any]:
        self.conn.send(msg)
        return self._reply()

    def stop(self) -> None:
        self.conn.send(("stop",))
        self.proc.join(timeout=60)


# ----------------------------------------------------------------------------- the comparison
def compare(graph_path: str, cfg: dict[str, Any], epochs: int, split: str, threads: int) -> dict[str, Any]:
    """Train both frameworks ``epochs`` epochs alternating, then evaluate both alternating."""
    workers = {name: Worker(name, graph_path, cfg, threads) for name in RUNNERS}
    seconds: dict[str, list[float]] = {name: [] for name in RUNNERS}
    try:
        for epoch in range(1, epochs + 1):
            order = list(RUNNERS) if epoch % 2 else list(RUNNERS)[::-1]
            for name in order:
                seconds[name].append(workers[name].ask("train", epoch)["seconds"])
        evals = {}
        for name in list(RUNNERS)[::-1] if epochs % 2 else list(RUNNERS):
            batch = cfg["eval_batch"] if name == "vlkge" else cfg["pykeen_eval_batch"]
            evals[name] = workers[name].ask("eval", split, batch)
    finally:
        for worker in workers.values():
            worker.stop()
    out = {}
    for name in RUNNERS:
        steady = seconds[name][1:] or seconds[name]
        out[name] = {
            "epoch_s": statistics.median(steady),
            "first_epoch_s": seconds[name][0],
            "eval_s": evals[name]["seconds"],
            "peak_mib": evals[name]["peak_mib"],
            "mrr": evals[name]["mrr"],
            "queries": evals[name]["queries"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--graph", default=str(common.DEFAULT_GRAPH), help="canonical graph or user graph dir"
    )
    parser.add_argument("--backbones", default=",".join(common.BACKBONES))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--eval-batch", type=int, default=1024)
    parser.add_argument(
        "--pykeen-eval-batch",
        type=int,
        default=128,
        help="PyKEEN's 1-vs-all scoring broadcasts [B, N, d]: its batch is bounded by memory",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    graph = common.load_graph(args.graph)
    if not (Path(args.graph) / "meta.json").is_file():
        args.graph = str(graph.root)  # the workers read the converted graph
    n_train = len(graph.triples["train"])
    gflops = common.matmul_gflops(device=args.device)
    print(
        f"graph {args.graph}: {graph.num_entities} entities, {graph.num_relations} relations, "
        f"{n_train} train triples; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.device}; float32 matmul {gflops:.1f} GFLOP/s"
    )
    print(
        f"config: dim {args.dim}, batch {args.batch}, {args.negatives} negatives, Adagrad {args.lr}, "
        f"softplus, {args.epochs} epoch(s), filtered eval of {args.split} (both directions)\n"
    )
    head = (
        f"{'backbone':9s} {'':6s} {'s/epoch':>8s} {'eval s':>8s} {'peak MiB':>9s} {'MRR':>7s}"
        f" {'train GF/s':>10s} {'eval GF/s':>9s}"
    )
    print(head)
    results: dict[str, Any] = {"gflops": gflops, "graph": args.graph, "rows": {}}
    for backbone in args.backbones.split(","):
        cfg = {
            "backbone": backbone,
            "dim": args.dim,
            "batch": args.batch,
            "negatives": args.negatives,
            "lr": args.lr,
            "seed": args.seed,
            "device": args.device,
            "eval_batch": args.eval_batch,
            "pykeen_eval_batch": args.pykeen_eval_batch,
        }
        row = compare(args.graph, cfg, args.epochs, args.split, args.threads)
        train_flops, _ = common.training_work(backbone, args.dim, n_train, args.negatives)
        for name in RUNNERS:
            r = row[name]
            r["train_gflops"] = train_flops / r["epoch_s"] / 1e9
            r["eval_gflops"] = (
                common.evaluation_flops(backbone, args.dim, r["queries"], graph.num_entities)
                / r["eval_s"]
                / 1e9
            )
            print(
                f"{backbone:9s} {name:6s} {r['epoch_s']:8.2f} {r['eval_s']:8.2f} {r['peak_mib']:9.0f} "
                f"{r['mrr']:7.4f} {r['train_gflops']:10.1f} {r['eval_gflops']:9.1f}"
            )
        v, p = row["vlkge"], row["pykeen"]
        print(
            f"{backbone:9s} {'ratio':6s} {p['epoch_s'] / v['epoch_s']:7.1f}x "
            f"{p['eval_s'] / v['eval_s']:7.1f}x "
            f"{p['peak_mib'] / v['peak_mib']:8.2f}x {v['mrr'] - p['mrr']:+7.4f}   roofline: train "
            f"{v['train_gflops'] / gflops:.1%}, eval {v['eval_gflops'] / gflops:.1%} of matmul"
        )
        results["rows"][backbone] = row
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

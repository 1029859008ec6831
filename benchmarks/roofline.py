"""The roofline of vlkge training and evaluation on this machine, and where the time goes.

Usage: python benchmarks/roofline.py [--graph data/wn9-img/graph | USER_GRAPH_DIR]
           [--backbones transe,distmult,complex,rotate] [--epochs 1] [--threads 0]
           [--profile] [--batches 8] [--vl lite]

Measures this machine's float32 matmul rate (GFLOP/s) and copy bandwidth (GB/s) in the same run,
then per backbone (the paper's config: dim 768, batch 512, 100 negatives, Adagrad 0.1) the
training epoch and the filtered evaluation of the test split, and reports the rates they reach as
fractions of those roofs. Training FLOPs: 3 × (1 + K) comparisons per triple (forward +
backward), 2·w each (w = entity width); its bytes: 3 rows of 4·w per sampled pair. Evaluation
FLOPs: 2 directions × queries × N candidates × 2·w.

``--vl STORE`` measures multimodal training instead (the product's defaults with ``--modalities
structural,visual,textual`` over the graph's feature store STORE: average fusion, feature prior
with text mentions): per backbone the structure-only epoch, the VL epoch, and the matmul floor of the
projections that epoch must compute — per step and modality, the forward product of the batch's
distinct entities' features [U_m, d_m] with the projection (to the part width: d, or a whole
complex row of 2d under ``model.imaginary: fused``) and its weight gradient (the features
are frozen: no input gradient), timed alone on matrices of the same shapes in the same run; under
a dot-product backbone, whose negatives are scored from the parts, also the products that take the
queries to each feature space. "every-row floor": the projections of every entity a step touches,
what the epoch computed before (issue 12's reference). The structure-only and VL trainers
alternate epoch by epoch and each VL epoch's floors are timed right after it; with ``--epochs E``
> 1 the first epoch is a warm-up and each later one gets a row, then their medians (this machine's
rate drifts by up to 1.5× within minutes: compare figures of one row, not across runs).

``--profile`` times ``--batches`` training steps phase by phase (sampling, positive scores =
the gathers of h, r, t, negative scores = the sampled kernel, loss, backward, optimiser) and
attributes the backward by autograd node (gather vs scoring); "python+dispatch+waiting" is the
wall time not spent inside any ATen operator (torch.profiler): interpreter and dispatch overhead,
plus time descheduled on a loaded machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from vlkge.config import load_config
from vlkge.evaluation import evaluate
from vlkge.ranking import Filters
from vlkge.representations import linear_negatives
from vlkge.training import Trainer, softplus_loss


def measure(graph, backbone: str, epochs: int, workdir: Path) -> dict[str, float]:
    """Seconds per training epoch (last of ``epochs``) and of one filtered test evaluation."""
    trainer = Trainer(graph, common.paper_config(backbone), workdir / backbone)
    seconds = [trainer.train_epoch(e, show=False)["seconds"] for e in range(1, epochs + 1)]
    filters = Filters.build(graph.all_triples(), graph.num_relations)
    evaluate(trainer.model, graph, "valid", filters=filters)  # warm-up
    start = time.perf_counter()
    metrics = evaluate(trainer.model, graph, "test", filters=filters, directions="both")
    return {
        "epoch_s": seconds[-1],
        "eval_s": time.perf_counter() - start,
        "queries": metrics["overall"]["count"],
    }


def projection_floor(rows: dict[str, list[int]], widths: dict[str, int], dim: int) -> float:
    """Seconds of the projection matmuls of one epoch: for each modality m and each step's row
    count U_m (``rows[m]``), forward [U_m, d_m] @ [d_m, d] and weight gradient [d, U_m] @ [U_m, d_m]
    (best of 5 each, per distinct size)."""

    total = 0.0
    for m, counts in rows.items():
        weight, bias = torch.randn(dim, widths[m]), torch.randn(dim)
        cache: dict[int, float] = {}
        for u in counts:
            if u not in cache:
                x, grad = torch.randn(u, widths[m]), torch.randn(u, dim)
                cache[u] = _best(x, weight.T, bias) + _best(grad.T, x)
            total += cache[u]
    return total


def query_floor(queries: dict[str, list[int]], widths: dict[str, int], dim: int) -> float:
    """Seconds of the products that take a step's Q queries to a modality's feature space
    (negatives scored from the parts, :mod:`vlkge.representations.linear_negatives`): forward
    [Q, d] @ [d, d_m], and the query and weight gradients (best of 5 each, per distinct size)."""
    total = 0.0
    for m, counts in queries.items():
        weight = torch.randn(dim, widths[m])
        cache: dict[int, float] = {}
        for q in counts:
            if q not in cache:
                x, grad = torch.randn(q, dim), torch.randn(q, widths[m])
                cache[q] = sum(_best(a, b) for a, b in ((x, weight), (grad, weight.T), (x.T, grad)))
            total += cache[q]
    return total


def _best(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> float:
    """Best of 5 timings of a @ b (+ bias, fused)."""
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a @ b if bias is None else torch.addmm(bias, a, b)
        times.append(time.perf_counter() - t)
    return min(times)


def measure_vl(graph, backbone: str, store: str, epochs: int, workdir: Path) -> list[dict[str, float]]:
    """Structure-only and VL seconds per epoch and the VL epoch's floors, for each of ``epochs``
    epochs after the first (a warm-up; one epoch: that one): the two trainers alternate epoch by
    epoch and each VL epoch's floors (:func:`projection_floor`, :func:`query_floor`, from the row
    counts its projections actually saw) are timed right after it, so that the machine's rate,
    which drifts here by up to 1.5× within minutes, is shared by the figures of one row."""
    plain = Trainer(graph, common.paper_config(backbone), workdir / f"{backbone}-structure")
    modalities = ["structural", "visual", "textual"]
    config = load_config(
        overrides={
            "model": {"backbone": backbone, "dim": 768, "modalities": modalities, "features": store},
            "train": {"epochs": 1, "eval_every": 10**9, "device": "cpu"},
        }
    )
    trainer = Trainer(graph, config, workdir / f"{backbone}-vl")
    reps = trainer.model.entity
    rows: dict[str, list[int]] = {m: [] for m in reps.feature_modalities}
    queries: dict[str, list[int]] = {m: [] for m in reps.feature_modalities}
    for m in reps.feature_modalities:
        reps.projections[m].register_forward_hook(
            lambda module, args, out, m=m: rows[m].append(int(args[0].shape[0])) if module.training else None
        )
    names = {id(reps.projections[m]): m for m in reps.feature_modalities}
    to_space = linear_negatives.to_feature_space

    def counted(q: torch.Tensor, projection: torch.nn.Module) -> torch.Tensor:
        queries[names[id(projection)]].append(int(q.shape[0] * q.shape[1]))
        return to_space(q, projection)

    # what projecting every entity a step touches would cost (the code before negatives were
    # scored from the parts): U_m per step and modality
    touched: dict[str, list[int]] = {m: [] for m in reps.feature_modalities}
    init = linear_negatives.LinearNegatives.__init__

    def noted(self, reps_, ids, weights) -> None:
        for m in reps_.feature_modalities:
            touched[m].append(int(reps_.mask[ids, reps_.modalities.index(m)].sum()))
        init(self, reps_, ids, weights)

    widths = {m: int(reps.feature_table(m).shape[1]) for m in reps.feature_modalities}
    out = reps.part_width  # what a projection maps to: d, or a whole complex row (2d) under ``fused``
    measured = []
    for e in range(1, epochs + 1):
        plain_s = plain.train_epoch(e, show=False)["seconds"]
        for counts in (*rows.values(), *queries.values(), *touched.values()):
            counts.clear()
        linear_negatives.to_feature_space = counted
        linear_negatives.LinearNegatives.__init__ = noted
        try:
            vl_s = trainer.train_epoch(e, show=False)["seconds"]
        finally:
            linear_negatives.to_feature_space = to_space
            linear_negatives.LinearNegatives.__init__ = init
        if e == 1 and epochs > 1:
            continue
        measured.append(
            {
                "structure_s": plain_s,
                "vl_s": vl_s,
                "floor_s": projection_floor(rows, widths, out) + query_floor(queries, widths, out),
                "rows": {m: sum(c) / max(len(c), 1) for m, c in rows.items()},
                "queries": {m: sum(c) / max(len(c), 1) for m, c in queries.items()},
                "every_row_floor_s": (
                    projection_floor(touched, widths, out) if any(touched.values()) else math.nan
                ),
            }
        )
    return measured


def _tick(phases: dict[str, float], name: str, start: float) -> float:
    now = time.perf_counter()
    phases[name] += now - start
    return now


GATHER_NODES = ("IndexSelectBackward", "EmbeddingBackward", "IndexBackward")


def profile_steps(graph, backbone: str, batches: int, workdir: Path) -> None:
    """Phase timings of ``batches`` training steps, then the same steps under torch.profiler."""
    trainer = Trainer(graph, common.paper_config(backbone), workdir / f"profile-{backbone}")
    model, sampler, opt = trainer.model, trainer.sampler, trainer.optimizer
    triples = trainer._epoch_triples()
    size = trainer.spec["batch_size"]

    def step(batch: torch.Tensor, phases: dict[str, float]) -> None:
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        negatives, corrupt_head, keep = sampler.sample(batch)
        replacement = torch.where(corrupt_head, negatives[..., 0], negatives[..., 2])
        t = _tick(phases, "sampling", t)
        positive = model.score_hrt(batch[:, 0], batch[:, 1], batch[:, 2])
        t = _tick(phases, "positive scores (gathers)", t)
        negative = model.score_negatives(batch, replacement, corrupt_head)
        t = _tick(phases, "negative scores (sampled kernel)", t)
        loss = softplus_loss(positive, negative, keep.float())
        t = _tick(phases, "loss", t)
        loss.backward()
        t = _tick(phases, "backward", t)
        opt.step()
        _tick(phases, "optimiser", t)

    warm: dict[str, float] = defaultdict(float)
    for i in range(2):
        step(triples[i * size : (i + 1) * size], warm)
    phases: dict[str, float] = defaultdict(float)
    chosen = [triples[(2 + i) * size : (3 + i) * size] for i in range(batches)]
    start = time.perf_counter()
    for batch in chosen:
        step(batch, phases)
    wall = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in chosen:
            step(batch, defaultdict(float))
    events = prof.key_averages()
    aten = sum(e.self_cpu_time_total for e in events if e.key.startswith("aten::")) / 1e6
    backward = defaultdict(float)
    for e in events:
        if e.key.startswith("autograd::engine::evaluate_function:"):
            node = e.key.split(":")[-1].strip()
            kind = (
                "gather" if node.startswith(GATHER_NODES) else "scoring" if "SampledDot" in node else "other"
            )
            backward[kind] += e.cpu_time_total / 1e6
    print(f"\n{backbone}: {batches} steps of {size} triples, {wall / batches * 1e3:.1f} ms/step")
    for name, seconds in phases.items():
        print(f"  {name:34s} {seconds / batches * 1e3:8.2f} ms  {seconds / wall:6.1%}")
    for kind in ("gather", "scoring", "other"):
        print(f"    backward: {kind:23s} {backward[kind] / batches * 1e3:8.2f} ms (profiled)")
    python = max(0.0, wall - aten)
    label = "python+dispatch+waiting (wall-ATen)"
    print(f"  {label:34s} {python / batches * 1e3:8.2f} ms  {python / wall:6.1%}")
    print("  top ATen operators (self CPU):")
    top = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
    for e in top[:8]:
        print(f"    {e.key:32s} {e.self_cpu_time_total / 1e3 / batches:8.2f} ms/step  x{e.count // batches}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", default=str(common.DEFAULT_GRAPH))
    parser.add_argument("--backbones", default=",".join(common.BACKBONES))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="where the time of a training step goes")
    parser.add_argument("--batches", type=int, default=8, help="steps timed by --profile")
    parser.add_argument("--vl", metavar="STORE", help="multimodal epochs against their projection floor")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        graph = common.load_graph(args.graph, Path(tmp))
        n_train = len(graph.triples["train"])
        gflops, gbps = common.matmul_gflops(), common.copy_gbps()
        print(
            f"{graph.num_entities} entities, {n_train} train triples; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; roofs: float32 matmul {gflops:.1f} GFLOP/s, "
            f"copy {gbps:.1f} GB/s\n"
        )
        if args.vl:
            print(
                f"{'backbone':9s} {'structure s/epoch':>17s} {'VL s/epoch':>10s} {'floor s':>8s} "
                f"{'VL / floor':>10s} {'VL / structure':>14s} {'every-row floor s':>17s} "
                f"{'VL / every':>10s}  mean rows (queries) per step"
            )
            for backbone in args.backbones.split(","):
                measured = measure_vl(graph, backbone, args.vl, args.epochs, Path(tmp))
                for i, r in enumerate(measured, start=2 if args.epochs > 1 else 1):
                    rows = ", ".join(f"{m} {n:,.0f} ({r['queries'][m]:,.0f})" for m, n in r["rows"].items())
                    print(
                        f"{backbone + ' ' + str(i):9s} {r['structure_s']:17.2f} {r['vl_s']:10.2f} "
                        f"{r['floor_s']:8.2f} {r['vl_s'] / r['floor_s']:10.2f} "
                        f"{r['vl_s'] / r['structure_s']:14.2f} {r['every_row_floor_s']:17.2f} "
                        f"{r['vl_s'] / r['every_row_floor_s']:10.2f}  {rows}"
                    )
                if len(measured) > 1:
                    med = {k: statistics.median(r[k] for r in measured) for k in ("vl_s", "floor_s")}
                    ratios = {
                        key: statistics.median(r["vl_s"] / r[key] for r in measured)
                        for key in ("floor_s", "structure_s", "every_row_floor_s")
                    }
                    print(
                        f"{backbone:9s} median of {len(measured)} epochs: VL {med['vl_s']:.2f} s, "
                        f"VL / floor {ratios['floor_s']:.2f}, VL / structure {ratios['structure_s']:.2f}, "
                        f"VL / every-row floor {ratios['every_row_floor_s']:.2f}"
                    )
            return
        if args.profile:
            for backbone in args.backbones.split(","):
                profile_steps(graph, backbone, args.batches, Path(tmp))
            return
        print(
            f"{'backbone':9s} {'s/epoch':>8s} {'GFLOP/s':>8s} {'%matmul':>8s} {'GB/s':>6s} {'%copy':>6s}"
            f" {'eval s':>7s} {'GFLOP/s':>8s} {'%matmul':>8s}"
        )
        for backbone in args.backbones.split(","):
            r = measure(graph, backbone, args.epochs, Path(tmp))
            flops, bytes_ = common.training_work(backbone, 768, n_train, 100)
            t_rate, t_bw = flops / r["epoch_s"] / 1e9, bytes_ / r["epoch_s"] / 1e9
            e_rate = (
                common.evaluation_flops(backbone, 768, r["queries"], graph.num_entities) / r["eval_s"] / 1e9
            )
            print(
                f"{backbone:9s} {r['epoch_s']:8.2f} {t_rate:8.1f} {t_rate / gflops:8.1%} {t_bw:6.1f} "
                f"{t_bw / gbps:6.1%} {r['eval_s']:7.2f} {e_rate:8.1f} {e_rate / gflops:8.1%}"
            )


if __name__ == "__main__":
    main()

"""Shared pieces of the benchmarks: graph loading, the paper's configuration, peak memory and the
roofline (this machine's float32 matmul rate and copy bandwidth, FLOPs and bytes per backbone)."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vlkge import api  # noqa: E402
from vlkge.config import Config, load_config  # noqa: E402
from vlkge.graph import Graph, read_graph  # noqa: E402
from vlkge.interactions import make_interaction  # noqa: E402

DEFAULT_GRAPH = REPO / "data" / "wn9-img" / "graph"
BACKBONES = ("transe", "distmult", "complex", "rotate")


def load_graph(path: str | Path, workdir: Path | None = None) -> Graph:
    """A canonical graph directory (with ``meta.json``) as is; any other directory is read as a
    user graph (``triples.csv`` or ``train.txt``/``valid.txt``/``test.txt``) through the project's
    own crawl and clean into ``workdir`` (a temporary directory by default)."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return read_graph(path)
    data_dir = Path(workdir or tempfile.mkdtemp(prefix="vlkge-bench-"))
    config = load_config(overrides={"crawl": {"source": str(path)}})
    return api.prepare("custom:bench", config, data_dir=data_dir)


def paper_config(backbone: str, **train: Any) -> Config:
    """The paper's WN9-IMG configuration (dim 768, batch 512, 100 negatives, Adagrad 0.1,
    softplus), structure only, with ``train`` overrides."""
    spec = {"epochs": 1, "eval_every": 10**9, "device": "cpu", **train}
    return load_config(overrides={"model": {"backbone": backbone, "dim": 768}, "train": spec})


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(n: int = 2048, seconds: float = 1.0, device: str = "cpu") -> float:
    """This machine's float32 matmul rate, GFLOP/s (best of repeated n×n products)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def copy_gbps(mib: int = 256, seconds: float = 0.5) -> float:
    """Memory bandwidth as read+write GB/s of a large float32 copy (the memory-bound roof)."""
    src = torch.randn(mib * 1024 * 1024 // 4)
    dst = torch.empty_like(src)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best / 1e9


def training_work(backbone: str, dim: int, triples: int, negatives: int) -> tuple[float, float]:
    """(FLOPs, bytes) of one sLCWA epoch: (1 + K) scores per triple, forward and backward
    (≈ 3× the forward's comparisons); each sampled pair reads one entity row forward and again
    backward and writes one gradient row (3 rows of 4·w bytes)."""
    inter = make_interaction(backbone, dim=dim)
    pairs = triples * (1 + negatives)
    flops = 3.0 * pairs * inter.flops_per_score()
    return flops, 3.0 * pairs * 4 * inter.entity_width


def evaluation_flops(backbone: str, dim: int, queries: int, candidates: int) -> float:
    """FLOPs of 1-vs-all scoring ``queries`` (both directions counted) against ``candidates``."""
    return float(queries) * candidates * make_interaction(backbone, dim=dim).flops_per_score()

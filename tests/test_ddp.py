"""``torchrun --nproc_per_node=2 -m vlkge train``: two CPU processes (gloo, DDP) train the model a
single process trains, within tolerance, and only rank 0 writes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from vlkge.config import load_config, load_params
from vlkge.evaluation import evaluate
from vlkge.graph import read_graph
from vlkge.runs import load_model
from vlkge.training import Trainer

TRAIN = {"epochs": 6, "batch_size": 128, "negatives": 8, "eval_every": 3, "device": "cpu"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from vlkge.pipeline import adapter_for
    from vlkge.pipeline.synthetic import write_synthetic_graph

    base = tmp_path_factory.mktemp("ddp")
    source = write_synthetic_graph(base / "source", entities=200, seed=1)
    params = load_params(overrides={"crawl": {"source": str(source), "images": None}})
    adapter = adapter_for("custom:toy")
    raw, graph = base / "data" / "custom-toy" / "raw", base / "data" / "custom-toy" / "graph"
    adapter.crawl("custom:toy", str(source), raw, params)
    adapter.clean("custom:toy", raw, graph, params)
    return base / "data"


def _torchrun(args: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` (gloo, one thread per process); it must
    succeed."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", **env}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_gloo_processes_match_one_process(data_dir, tmp_path):
    flags = ["--dim", "32", "--epochs", "6", "--batch-size", "128", "--negatives", "8", "--device", "cpu"]
    command = ["-m", "vlkge", "--data-dir", str(data_dir), "train", "custom:toy", "--backbone", "distmult"]
    result = _torchrun([*command, *flags, "--out", "ddp", "--quiet"], tmp_path)
    assert result.stderr.count("trained distmult") == 1  # rank 0 reports, rank 1 is silent
    run_dir = data_dir / "custom-toy" / "models" / "ddp"
    written = sorted(p.name for p in run_dir.iterdir())
    assert written == ["checkpoint.pt", "config.json", "history.json", "model.pt"]
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))

    graph = read_graph(data_dir / "custom-toy" / "graph")
    params = load_config(overrides={"model": {"backbone": "distmult", "dim": 32}, "train": TRAIN})
    threads = torch.get_num_threads()
    try:  # one thread, as each torchrun process had (faster on a loaded 2-core machine)
        torch.set_num_threads(1)
        single = Trainer(graph, params, tmp_path / "single")
        single.fit(show=False, log=None)
    finally:
        torch.set_num_threads(threads)
    # every triple of the epoch was trained on, split over the two ranks (at most 1 dropped)
    assert len(graph.triples["train"]) - history[0]["triples"] <= 1
    # the same optimisation: losses and valid/test MRR agree up to the negatives drawn
    for ddp_epoch, one_epoch in zip(history, single.state.history, strict=True):
        assert ddp_epoch["loss"] == pytest.approx(one_epoch["loss"], rel=0.1, abs=0.02)
    ddp_mrr = evaluate(load_model(run_dir, graph), graph, "test")["overall"]["mrr"]
    one_mrr = evaluate(single.model, graph, "test")["overall"]["mrr"]
    random_mrr = sum(1 / k for k in range(1, graph.num_entities + 1)) / graph.num_entities
    assert one_mrr > 10 * random_mrr
    assert ddp_mrr == pytest.approx(one_mrr, abs=0.06)


def test_fine_tuning_ranks_keep_one_encoder(tmp_path):
    """The encoder's unfrozen layers are averaged over the ranks like the model's parameters (before
    stop 20 each rank stepped its own copy with its own batches' gradients)."""
    from pathlib import Path

    from tests.vl_data import IMAGES, encoded_project

    if not IMAGES.is_dir():
        pytest.skip("test photos not found")
    encoded_project(tmp_path / "data")
    root = Path(__file__).resolve().parent.parent
    script = [str(root / "tests" / "ddp_finetune_ranks.py"), str(tmp_path / "data")]
    result = _torchrun(script, tmp_path, PYTHONPATH=str(root))
    ranks = next(line for line in result.stdout.splitlines() if line.startswith("RANKS")).split()[1:]
    first, second = ([float(v) for v in rank.split(",")] for rank in ranks)
    assert first == second

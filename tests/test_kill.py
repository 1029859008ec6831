"""Kill tests, for real: ``vlkge encode`` and ``vlkge train`` as subprocesses, SIGKILLed at
seeded random points, started again (the same command; ``--resume`` for train), until they
finish. Then the feature store is byte-identical to an uninterrupted run's, the trained model is
bit-identical (and the metrics equal) to an uninterrupted run with the same seed, no temporary
file is left, and after every kill nothing partial is readable as complete.

``VLKGE_KILL_POINTS`` (default 2) sets the number of kills per command;
``VLKGE_KILL_SEED`` (default 7) the seed that places them. Each kill is reported on stdout
(``pytest -s``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_encode_common import make_graph, needs_data, real_images, store_bytes, tiny_encoder
from vlkge.features import MANIFEST, check_store, load_features, read_sidecar, shard_is_complete

CLI = [sys.executable, "-c", "from vlkge.cli import main; main()"]
SEED = int(os.environ.get("VLKGE_KILL_SEED", "7"))


def kill_points(default: int) -> int:
    return int(os.environ.get("VLKGE_KILL_POINTS", str(default)))


def start(project: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [*CLI, *args], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )


def temporaries(root: Path) -> list[Path]:
    """What an interrupted atomic write leaves: ``.<name>.<random>.tmp`` files or directories."""
    return [p for p in root.rglob(".*") if p.name.endswith(".tmp") or p.name.endswith(".old")]


# ----------------------------------------------------------------------------- encode

ENCODE_PARAMS = {
    "dataset": "demo",
    "encode": {"model": "tiny-clip", "device": "cpu", "batch_size": 4, "shard_rows": 4, "workers": 0},
}


def _encode_project(root: Path) -> Path:
    """24 entities with one real photo each, 60 with text: 6 + 15 + 1 shards of 4 rows."""
    photos = real_images(12)
    n = 60
    make_graph(
        root / "data" / "demo",
        names=[f"thing {i}" for i in range(n)],
        texts=[f"entity number {i}, a thing among things" for i in range(n)],
        images=[[photos[i % 12]] if i < 24 else [] for i in range(n)],
    )
    (root / "params.yaml").write_text(yaml.safe_dump(ENCODE_PARAMS))
    return root / "data" / "demo" / "features" / "tiny-clip"


def _complete_shards(store: Path) -> int:
    return len(list(store.glob("*/part-*.json")))


def _assert_nothing_partial_reads_as_complete(store: Path) -> None:
    """After a kill: every shard with a sidecar is the file the sidecar hashed; a modality with a
    manifest verifies completely; one without refuses to load."""
    for mod_dir in sorted(p for p in store.iterdir() if p.is_dir()):
        for sidecar in mod_dir.glob("part-*.json"):
            index = int(sidecar.stem.split("-")[1])
            record = read_sidecar(mod_dir, index)
            assert record is not None, f"{sidecar} is not complete JSON"
            assert shard_is_complete(mod_dir, index, record["fingerprint"], record["inputs_sha256"])
        if (mod_dir / MANIFEST).is_file():
            check_store(mod_dir)
        else:
            with pytest.raises(Exception, match="manifest"):
                load_features(mod_dir)


@needs_data
def test_encode_killed_at_random_points_ends_byte_identical(tmp_path):
    from vlkge.encoding import EncodeOptions, encode_graph
    from vlkge.graph import read_graph

    store = _encode_project(tmp_path / "project")
    reference = tmp_path / "reference"
    options = EncodeOptions(batch_size=4, shard_rows=4, workers=0, progress=False)
    graph = read_graph(tmp_path / "project" / "data" / "demo" / "graph")
    encode_graph(graph, tiny_encoder(), reference, options, log=lambda m: None)
    total = _complete_shards(reference)

    rng = random.Random(SEED)
    targets = sorted(rng.sample(range(1, total), kill_points(2)))
    report = []
    for target in targets:
        target = max(target, _complete_shards(store) + 1) if store.exists() else target
        proc = start(tmp_path / "project", "encode", "--no-progress")
        while (_complete_shards(store) if store.exists() else 0) < target and proc.poll() is None:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next shard
        if proc.poll() is not None:
            report.append(f"target {target}: finished before the kill")
            continue
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done = _complete_shards(store)
        report.append(f"killed with {done}/{total} shards complete (target {target})")
        _assert_nothing_partial_reads_as_complete(store)
    proc = start(tmp_path / "project", "encode", "--no-progress")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    print("encode kills:", "; ".join(report))
    assert sum("killed" in line for line in report) >= 1
    assert store_bytes(store) == store_bytes(reference)
    assert not temporaries(tmp_path / "project" / "data")


# ----------------------------------------------------------------------------- train

TRAIN_PARAMS = {
    "dataset": "custom:toy",
    "seed": 11,
    "model": {"backbone": "complex", "dim": 32},
    "train": {
        "epochs": 6,
        "batch_size": 64,
        "negatives": 16,
        "eval_every": 2,
        "device": "cpu",
        "threads": 1,
        "sampler": "bernoulli",
    },
}


@pytest.fixture(scope="module")
def train_project(tmp_path_factory) -> Path:
    """A cleaned synthetic graph (300 entities) and params.yaml for a 6-epoch CPU run."""
    from vlkge.pipeline import adapter_for
    from vlkge.pipeline.synthetic import write_synthetic_graph

    from vlkge.config import load_params

    root = tmp_path_factory.mktemp("train")
    source = write_synthetic_graph(root / "source", entities=300, seed=3)
    (root / "params.yaml").write_text(yaml.safe_dump(TRAIN_PARAMS))
    params = load_params(root / "params.yaml")
    adapter = adapter_for("custom:toy")
    data = root / "data" / "custom-toy"
    adapter.crawl("custom:toy", str(source), data / "raw", params)
    adapter.clean("custom:toy", data / "raw", data / "graph", params)
    return root


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _metrics(run: Path) -> dict:
    from vlkge.evaluation import evaluate
    from vlkge.graph import read_graph
    from vlkge.runs import load_model

    graph = read_graph(run.parents[1] / "graph")
    return evaluate(load_model(run, graph), graph, "test")["overall"]


def _checkpoint_epoch(run: Path) -> int:
    if not (run / "checkpoint.pt").exists():
        return 0
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["state"]["epoch"]


def _check_after_kill(run: Path, logged_epoch: int) -> int:
    """Nothing partial reads as complete: the checkpoint (if any) loads and holds the last logged
    epoch (or the next one: killed between saving and logging); model.pt and JSON files load."""
    epoch = 0
    if (run / "checkpoint.pt").exists():
        payload = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
        epoch = payload["state"]["epoch"]
        assert epoch in (logged_epoch, logged_epoch + 1), (epoch, logged_epoch)
        assert len(payload["state"]["history"]) == epoch
    else:
        assert logged_epoch == 0
    if (run / "model.pt").exists():
        _weights(run / "model.pt")
    for name in ("config.json", "history.json"):
        if (run / name).exists():
            json.loads((run / name).read_text())
    return epoch


def test_train_killed_at_random_points_resumes_to_identical_results(train_project):
    from vlkge.config import load_config
    from vlkge.graph import read_graph
    from vlkge.training import Trainer

    project = train_project
    models = project / "data" / "custom-toy" / "models"
    threads = torch.get_num_threads()
    try:  # the uninterrupted run, in this process (the same code and thread count as the CLI)
        params = load_config(project / "params.yaml")
        Trainer(read_graph(models.parent / "graph"), params, models / "ref").fit(show=False, log=None)
    finally:
        torch.set_num_threads(threads)
    history = json.loads((models / "ref" / "history.json").read_text())
    epochs = len(history)
    epoch_seconds = sum(h["seconds"] for h in history) / epochs

    rng = random.Random(SEED + 1)
    targets = sorted(rng.sample(range(1, epochs), min(kill_points(2), epochs - 1)))
    run = models / "killed"
    report = []
    for target in targets:
        resume = ["--resume"] if (run / "checkpoint.pt").exists() else []
        proc = start(project, "train", "--out", "killed", "--quiet", *resume)
        last = _checkpoint_epoch(run)  # epochs complete before this process started
        for line in proc.stderr:
            if line.startswith("epoch"):
                last = int(line.split()[1])
                if last >= target:
                    break
        time.sleep(rng.uniform(0, 1.5 * epoch_seconds))  # inside the next epoch (or its save)
        if proc.poll() is not None:
            report.append(f"target epoch {target}: finished before the kill")
            continue
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stderr.read().splitlines():  # what it logged before the kill
            if line.startswith("epoch"):
                last = int(line.split()[1])
        epoch = _check_after_kill(run, last)
        report.append(f"killed after epoch {last} logged, checkpoint at epoch {epoch} (target {target})")
    proc = start(project, "train", "--out", "killed", "--quiet", "--resume")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    print("train kills:", "; ".join(report))
    assert sum("killed" in line for line in report) >= 1

    assert not temporaries(run)
    for name in ("model.pt", "checkpoint.pt"):
        ref, got = _weights(models / "ref" / name), _weights(run / name)
        assert ref.keys() == got.keys()
        for key in ref:
            assert torch.equal(ref[key], got[key]), f"{name}: {key} differs"
    resumed = json.loads((run / "history.json").read_text())
    assert [(h["loss"], h.get("valid_mrr")) for h in resumed] == [
        (h["loss"], h.get("valid_mrr")) for h in history
    ]
    assert _metrics(run) == _metrics(models / "ref")

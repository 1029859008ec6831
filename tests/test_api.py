"""The Python API runs the pipeline the command line runs, with the same results."""

from __future__ import annotations

import json
import subprocess
import sys

from vlkge.pipeline.synthetic import write_synthetic_graph

from vlkge import api
from vlkge.config import load_config

TRAIN = {"epochs": 4, "batch_size": 128, "negatives": 8, "eval_every": 2, "device": "cpu", "threads": 1}


def test_prepare_train_evaluate_and_the_cli_agree(tmp_path):
    source = write_synthetic_graph(tmp_path / "source", entities=120, seed=2)
    data = tmp_path / "data"
    overrides = {"crawl": {"source": str(source)}, "model": {"dim": 16}, "train": TRAIN, "seed": 3}
    config = load_config(None, {"dataset": "custom:toy", **overrides})
    graph = api.prepare(None, config, data)
    assert graph.num_entities == 120 and (data / "custom-toy" / "graph" / "meta.json").is_file()
    trained = api.train(None, config, data, out="mine", show=False, log=None)
    assert trained.state.epoch == 4 and trained.run_dir == data / "custom-toy" / "models" / "mine"
    again = api.train(None, config, data, out="mine", resume=None, show=False, log=None)  # resumes
    assert again.state.history == trained.state.history
    metrics = api.evaluate("mine", config, data).metrics
    out = tmp_path / "eval.json"
    cli = [sys.executable, "-m", "vlkge", "--data-dir", str(data), "evaluate", "mine"]
    done = subprocess.run(
        [*cli, "--dataset", "custom:toy", "--out", str(out)], cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text())["overall"] == metrics["overall"]

"""The `vlkge` command line end to end, as a user types it, in fresh processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vlkge.pipeline.synthetic import write_synthetic_graph

from vlkge.cli import log_level

SMALL = [
    "--dim",
    "32",
    "--epochs",
    "4",
    "--batch-size",
    "128",
    "--negatives",
    "8",
    "--device",
    "cpu",
]


def vlkge(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", "from vlkge.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"vlkge {' '.join(args)} failed:\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def user_graph(tmp_path_factory) -> Path:
    return write_synthetic_graph(tmp_path_factory.mktemp("src") / "graph", entities=200, seed=1)


def test_crawl_clean_train_evaluate_and_fresh_process_gives_same_metrics(tmp_path, user_graph):
    vlkge("crawl", "custom:toy", "--source", str(user_graph), cwd=tmp_path)
    cleaned = vlkge("clean", "custom:toy", cwd=tmp_path)
    assert "entities 200" in cleaned.stderr
    vlkge(
        "train",
        "custom:toy",
        "--backbone",
        "complex",
        *SMALL,
        "--out",
        "run1",
        "--quiet",
        cwd=tmp_path,
    )
    run = tmp_path / "data" / "custom-toy" / "models" / "run1"
    assert {"config.json", "checkpoint.pt", "model.pt", "history.json"} <= {p.name for p in run.iterdir()}
    config = json.loads((run / "config.json").read_text())
    assert config["params"]["model"]["backbone"] == "complex" and config["seed"] == 42
    assert "torch" in config["versions"]
    first = vlkge("evaluate", str(run), "--metrics", "m1.json", cwd=tmp_path)
    vlkge("evaluate", "run1", "--dataset", "custom:toy", "--metrics", "m2.json", cwd=tmp_path)
    assert "overall" in first.stdout and "MRR" in first.stdout
    m1 = json.loads((tmp_path / "m1.json").read_text())
    assert m1 == json.loads((tmp_path / "m2.json").read_text())
    assert m1["overall"]["count"] > 0 and 0 < m1["overall"]["mrr"] <= 1
    paper = vlkge("evaluate", str(run), "--protocol", "paper", cwd=tmp_path)
    assert "protocol paper" in paper.stdout
    assert (run / "eval_test_paper.json").is_file()


def test_training_twice_into_one_run_needs_resume(tmp_path, user_graph):
    vlkge("crawl", "custom:toy", "--source", str(user_graph), cwd=tmp_path)
    vlkge("clean", "custom:toy", cwd=tmp_path)
    vlkge("train", "custom:toy", *SMALL, "--out", "r", "--quiet", cwd=tmp_path)
    again = vlkge("train", "custom:toy", *SMALL, "--out", "r", "--quiet", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = vlkge(
        "train", "custom:toy", *SMALL[:2], "--epochs", "6", "--out", "r", "--resume", cwd=tmp_path
    )
    assert "resuming" in resumed.stderr and "epoch    5" in resumed.stderr


def test_dataset_defaults_to_params_yaml(tmp_path, user_graph):
    (tmp_path / "params.yaml").write_text(
        f"dataset: custom:mine\ncrawl:\n  source: {user_graph}\nmodel:\n  dim: 16\n"
        "train:\n  epochs: 2\n  negatives: 4\n  device: cpu\n"
    )
    vlkge("crawl", cwd=tmp_path)
    vlkge("clean", cwd=tmp_path)
    vlkge("train", "--quiet", cwd=tmp_path)
    config = json.loads((tmp_path / "data/custom-mine/models/distmult/config.json").read_text())
    assert config["params"]["model"]["dim"] == 16 and config["params"]["model"]["margin"] == 0.0
    vlkge("train", "--backbone", "rotate", "--margin", "6", "--epochs", "1", "--quiet", cwd=tmp_path)
    config = json.loads((tmp_path / "data/custom-mine/models/rotate/config.json").read_text())
    assert config["params"]["model"]["margin"] == 6.0 and config["params"]["model"]["dim"] == 16


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["clean", "custom:absent"], "vlkge crawl"),
        (["train", "custom:absent"], "meta.json"),
        (["crawl", "custom:x", "--source", "/no/such/dir"], "/no/such/dir"),
        (["train", "--backbone", "transr"], "choose one of"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, args, needle):
    result = vlkge(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]


@pytest.mark.parametrize(
    ("rank", "level"), [(None, logging.INFO), ("0", logging.INFO), ("1", logging.WARNING)]
)
def test_only_rank_zero_of_a_multi_process_job_logs_info(monkeypatch, rank, level):
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    assert log_level() == level

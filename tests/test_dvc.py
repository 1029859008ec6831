"""A real DVC pipeline: `dvc repro`, a params change, `dvc repro`, `dvc metrics diff`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from vlkge.pipeline.synthetic import write_synthetic_graph

PIPELINE = """
stages:
  crawl:
    cmd: vlkge crawl custom:toy
    params: [crawl]
    outs: [data/custom-toy/raw]
  clean:
    cmd: vlkge clean custom:toy
    deps: [data/custom-toy/raw]
    params: [clean]
    outs: [data/custom-toy/graph]
  train:
    cmd: vlkge train custom:toy --out dvc --quiet
    deps: [data/custom-toy/graph]
    params: [seed, model, train]
    outs: [data/custom-toy/models/dvc]
  evaluate:
    cmd: vlkge evaluate data/custom-toy/models/dvc --out reports/eval.json --metrics reports/metrics.json
    deps: [data/custom-toy/models/dvc]
    params: [evaluate]
    outs:
      - reports/eval.json:
          cache: false
    metrics:
      - reports/metrics.json:
          cache: false
"""


def run(*cmd: str, cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.skipif(
    shutil.which("dvc") is None or shutil.which("vlkge") is None, reason="dvc/vlkge not on PATH"
)
def test_repro_params_change_and_metrics_diff(tmp_path):
    source = write_synthetic_graph(tmp_path / "source", entities=150, seed=2)
    repo = tmp_path / "repo"
    repo.mkdir()
    params = (
        f"dataset: custom:toy\ncrawl:\n  source: {source}\n"
        "model:\n  backbone: distmult\n  dim: 16\n"
        "train:\n  epochs: 3\n  batch_size: 128\n  negatives: 4\n  device: cpu\n"
        "seed: 42\nclean:\n  unseen: drop\nevaluate:\n  split: test\n"
    )
    (repo / "params.yaml").write_text(params)
    (repo / "dvc.yaml").write_text(PIPELINE)
    run("git", "init", "-q", cwd=repo)
    run("git", "config", "user.email", "ci@example.org", cwd=repo)
    run("git", "config", "user.name", "ci", cwd=repo)
    run("dvc", "init", "-q", cwd=repo)
    run("dvc", "config", "core.analytics", "false", cwd=repo)
    run("dvc", "repro", cwd=repo)
    first = json.loads((repo / "reports/metrics.json").read_text())
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "distmult", cwd=repo)
    assert "up to date" in run("dvc", "status", cwd=repo).lower()

    (repo / "params.yaml").write_text(params.replace("backbone: distmult", "backbone: transe"))
    out = run("dvc", "repro", cwd=repo)
    assert "Running stage 'train'" in out and "Running stage 'crawl'" not in out
    second = json.loads((repo / "reports/metrics.json").read_text())
    assert second != first
    diff = run("dvc", "metrics", "diff", "--json", cwd=repo)
    changes = json.loads(diff)["reports/metrics.json"]
    assert changes["overall.mrr"]["old"] == pytest.approx(first["overall"]["mrr"])
    assert changes["overall.mrr"]["new"] == pytest.approx(second["overall"]["mrr"])

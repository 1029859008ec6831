"""`vlkge train --frozen` reads the feature store only, and its model evaluates to the same
metrics in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.vl_data import IMAGES, encode_tiny, write_tiny_vl_graph
from vlkge.evaluation import evaluate
from vlkge.graph import read_graph
from vlkge.runs import load_model

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")

TRAIN = """
import sys
from vlkge.cli import app
sys.argv = ["vlkge", "--data-dir", {data!r}, "train", "tiny-vl", "--frozen", "--backbone", "complex",
            "--modalities", "structural,textual,visual", "--fusion", "weighted", "--features", "tiny-clip",
            "--dim", "16", "--epochs", "3", "--batch-size", "16", "--negatives", "4", "--device", "cpu",
            "--out", "frozen", "--quiet"]
try:
    app()
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = sorted({{"open_clip", "transformers", "efficientnet_lite_pytorch"}} & set(sys.modules))
assert not heavy, f"an encoder library was loaded: {{heavy}}"
"""


def test_frozen_training_reads_the_store_only_and_evaluates_the_same_elsewhere(tmp_path):
    data = tmp_path / "data"
    graph = write_tiny_vl_graph(data / "tiny-vl")
    encode_tiny(graph)
    done = subprocess.run(
        [sys.executable, "-c", TRAIN.format(data=str(data))], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = data / "tiny-vl" / "models" / "frozen"
    config = json.loads((run / "config.json").read_text())
    assert set(config["features"]) == {"visual", "textual"}
    assert config["features"]["visual"]["encoder"]["name"] == "tiny-clip"

    graph = read_graph(data / "tiny-vl" / "graph")
    here = evaluate(load_model(run, graph), graph, "test")
    out = tmp_path / "eval.json"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vlkge.cli import main; main()",
            "--data-dir",
            str(data),
            "evaluate",
            str(run),
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    there = json.loads(out.read_text())
    assert there["overall"] == here["overall"]
    assert there["entities"] == here["entities"]
    assert here["overall"]["count"] == 12

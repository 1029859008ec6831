"""Crash safety through the real command line: ``vlkge encode`` killed with SIGKILL mid-run,
started again, finishes without recomputing complete shards and leaves a store byte-identical
to an uninterrupted run. Also ``--merge`` / ``--check`` and ``--shard i/n`` on the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_encode_common import make_graph, needs_data, real_images, store_bytes, tiny_encoder
from vlkge.encoding import EncodeOptions, encode_graph

pytestmark = needs_data

PARAMS = {
    "dataset": "demo",
    "encode": {
        "model": "tiny-clip",
        "device": "cpu",
        "batch_size": 4,
        "shard_rows": 4,
        "workers": 0,
    },
}
CLI = [sys.executable, "-c", "from vlkge.cli import main; main()"]


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """A project dir with params.yaml and data/demo/graph: 24 entities with one real photo each
    (12 photos reused) and 60 with text: 6 + 15 + 1 shards of 4 rows."""
    photos = real_images(12)
    n = 60
    graph_root = tmp_path / "data" / "demo"
    make_graph(
        graph_root,
        names=[f"thing {i}" for i in range(n)],
        texts=[f"entity number {i}, a thing among things" for i in range(n)],
        images=[[photos[i % 12]] if i < 24 else [] for i in range(n)],
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path, graph_root / "features" / "tiny-clip"


def _run(project: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "encode", "--no-progress", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _sidecars(store: Path) -> list[Path]:
    return sorted(store.glob("*/part-*.json"))


def test_sigkill_mid_run_then_resume_gives_an_identical_store(tmp_path):
    project, store = _project(tmp_path)
    reference = tmp_path / "reference"
    from vlkge.graph import read_graph

    options = EncodeOptions(batch_size=4, shard_rows=4, workers=0, progress=False)
    encode_graph(
        read_graph(project / "data" / "demo" / "graph"),
        tiny_encoder(),
        reference,
        options,
        log=print,
    )

    proc = _run(project)
    deadline = time.monotonic() + 120
    while len(_sidecars(store)) < 3:
        if proc.poll() is not None:
            pytest.fail(f"encode ended before it could be killed:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no shard completed within 120 s")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # complete shards: the parquet and its sidecar (written after it; a parquet the kill caught
    # before its sidecar is incomplete and is computed again)
    complete = [p for p in store.rglob("part-*.parquet") if p.with_suffix(".json").exists()]
    done = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in complete}
    assert 3 <= len(done) < 20, "killed too late to test resuming"
    assert not (store / "text" / "manifest.json").exists()

    proc = _run(project)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "complete" in output
    for path, stamp in done.items():  # complete shards were not recomputed
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    assert store_bytes(store) == store_bytes(reference)


def _cli(project: Path, *args: str):
    """``vlkge --data-dir … --params … encode ARGS`` in this process (open_clip already loaded)."""
    from typer.testing import CliRunner

    from vlkge import cli

    argv = ["--data-dir", str(project / "data"), "--params", str(project / "params.yaml")]
    return CliRunner().invoke(cli.app, [*argv, "encode", "--no-progress", *args])


def test_cli_shards_merge_and_check(tmp_path):
    from vlkge.features import IncompleteStoreError

    project, _ = _project(tmp_path)
    first = _cli(project, "--shard", "0/2")
    assert first.exit_code == 0, first.output
    assert "run `vlkge encode --merge` once every shard is" in first.output
    check = _cli(project, "--check")
    assert isinstance(check.exception, IncompleteStoreError)
    assert _cli(project, "--shard", "1/2").exit_code == 0
    merged = _cli(project, "--merge")
    assert merged.exit_code == 0, merged.output
    assert "text: 60 rows x 32" in merged.output and "image: 24 rows x 32" in merged.output
    assert _cli(project, "--check").exit_code == 0

"""Stale outputs: a graph changed after encoding (new entities) is detected from the graph hashes
in the feature store's manifest and refused with the command to run; running it reuses the
complete shards and makes the store fresh again. DVC's dependency tracking agrees."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.test_bad_inputs import vlkge
from vlkge.errors import InputError
from vlkge.features import load_features
from vlkge.graph import read_graph

DATASET = "custom:st"
PARAMS = {
    "dataset": DATASET,
    "encode": {"model": "tiny-clip", "device": "cpu", "workers": 0, "batch_size": 8, "shard_rows": 4},
}
STAGE = """
stages:
  encode:
    cmd: vlkge encode custom:st --no-progress
    deps:
      - data/custom-st/graph
    params:
      - encode
    outs:
      - data/custom-st/features/tiny-clip:
          persist: true
"""


def _project(root: Path, entities: int = 12) -> Path:
    """A user graph of ``entities`` entities in a ring, each with a text; crawled, cleaned and
    encoded (text and relation names: 3 + 1 shards)."""
    source = root / "source"
    source.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "crawl": {"source": str(source)}}))
    _write_source(source, entities)
    for args in (("crawl",), ("clean",), ("encode", "--no-progress")):
        code, err = vlkge(None, root, *args)
        assert code == 0, err
    return root


def _write_source(source: Path, entities: int) -> None:
    triples = ["head,relation,tail,mode"]
    triples += [f"e{i},next,e{(i + 1) % entities},train" for i in range(entities)]
    triples += [f"e{i},skip,e{(i + 2) % entities},train" for i in range(entities)]
    (source / "triples.csv").write_text("\n".join(triples) + "\n")
    rows = ["entity,text"] + [f"e{i},entity number {i}" for i in range(entities)]
    (source / "entities.csv").write_text("\n".join(rows) + "\n")


def _grow_graph(root: Path, entities: int) -> None:
    """The user adds entities to the graph and runs crawl and clean again."""
    _write_source(root / "source", entities)
    for args in (("crawl",), ("clean",)):
        code, err = vlkge(None, root, *args)
        assert code == 0, err


def _store(root: Path) -> Path:
    return root / "data" / "custom-st" / "features" / "tiny-clip"


def test_new_entities_after_encoding_are_refused_with_the_command(tmp_path, capsys):
    root = _project(tmp_path)
    assert vlkge(capsys, root, "encode", "--check")[0] == 0
    _grow_graph(root, 13)

    code, err = vlkge(capsys, root, "encode", "--check")
    assert code == 2 and "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert "stale feature store" in line and "12 entities then, 13 now" in line
    command = re.search(r"`vlkge (encode [^`]*)`", line).group(1).split()
    assert command == ["encode", DATASET, "--model", "tiny-clip"]
    graph = read_graph(root / "data" / "custom-st" / "graph")
    with pytest.raises(InputError, match="stale feature store"):
        load_features(_store(root) / "text", graph=graph)  # what training reads through
    train = ("train", "--modalities", "structural,textual", "--negatives", "4", "--quiet")
    code, err = vlkge(capsys, root, *train)
    assert code == 2 and "stale feature store" in err and "vlkge encode custom:st --model tiny-clip" in err

    code, err = vlkge(capsys, root, *command, "--no-progress")
    assert code == 0, err
    assert "text: 13 rows planned in 4 shard(s); 3 complete, 1 written" in err  # shards reused
    assert "relation_text: 2 rows planned in 1 shard(s); 1 complete, 0 written" in err
    assert vlkge(capsys, root, "encode", "--check")[0] == 0
    text = load_features(_store(root) / "text", graph=graph)
    assert sorted(text.ids.tolist()) == list(range(13))


def _dvc(root: Path, *args: str) -> str:
    result = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _fresh(root: Path) -> bool:
    graph = read_graph(root / "data" / "custom-st" / "graph")
    try:
        for modality in ("text", "relation_text"):
            load_features(_store(root) / modality, graph=graph)
    except InputError:
        return False
    return True


@pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc not on PATH")
def test_dvc_status_and_manifest_hashes_agree(tmp_path, capsys):
    """New entities: DVC sees the encode stage's dependency changed, and vlkge refuses the store;
    after the re-encode both are satisfied. (DVC tracks the whole graph directory, so a change to
    the triples alone makes it re-run encode, which then reuses every shard.)"""
    root = _project(tmp_path)
    (root / "dvc.yaml").write_text(STAGE)
    _dvc(root, "init", "--no-scm", "-q")
    _dvc(root, "commit", "-f", "-q", "encode")
    assert "up to date" in _dvc(root, "status", "encode") and _fresh(root)

    _grow_graph(root, 14)
    status = _dvc(root, "status", "encode")
    assert "changed deps" in status and "data/custom-st/graph" in status
    assert not _fresh(root)

    code, err = vlkge(capsys, root, "encode", "--no-progress")
    assert code == 0, err
    _dvc(root, "commit", "-f", "-q", "encode")
    assert "up to date" in _dvc(root, "status", "encode") and _fresh(root)

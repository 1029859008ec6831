"""``vlkge demo``: WN9-IMG as shipped in the package, an inductive split, lite text features, a
structure-only and a VL model beside the nearest-neighbour baseline, a prediction for a held-out
entity; the same numbers on a rerun. A small budget (a connected part of 200 entities, dim 16,
2 epochs) keeps it to seconds; the real budget is measured in the README."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from vlkge.cli import app

SMALL = ["--entities", "200", "--dim", "16", "--epochs", "2"]
ROWS = (
    "structure only (DistMult)",
    "VL-DistMult (structure + text)",
    "nearest neighbours (text, no training)",
    "  + text mentions (text+mentions, no training)",
)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No data mirror (so no photos: text only), the download cache in tmp_path."""
    monkeypatch.delenv("VLKGE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("VLKGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # a params.yaml in the working directory would not be read anyway
    return tmp_path / "data"


def demo(data) -> tuple[str, str]:
    done = CliRunner().invoke(app, ["--data-dir", str(data), "demo", *SMALL])
    assert done.exit_code == 0, done.output + str(done.exception)
    return done.stdout, done.stderr


def table_rows(out: str) -> dict[str, list[float]]:
    """Label → the six figures (overall, seen, unseen: MRR and Hits@10) of the demo's table."""
    rows = {}
    for line in out.splitlines():
        for label in ROWS:
            if line.startswith(label):
                rows[label] = [float(x) for x in re.findall(r"\d\.\d{3}", line[len(label) :])]
    return rows


def test_demo_runs_on_wn9_img_and_a_rerun_gives_the_same_numbers(offline):
    out, err = demo(offline)
    rows = table_rows(out)
    assert set(rows) == set(ROWS)
    assert all(len(figures) == 6 for figures in rows.values())  # overall, seen, unseen: MRR, H@10
    assert "touching an entity unseen in training" in out
    assert "the VL model reads text only" in err and "[7/7]" in err
    ds = offline / "wn9-img-demo"
    meta = json.loads((ds / "graph" / "meta.json").read_text())
    assert meta["protocol"]["inductive"] and meta["connected_part"]["entities"] == 200
    held = meta["holdout"]["held_out_keys"]["test"]
    predicted = re.search(r"held-out entity (\S+), never seen in training", out)
    assert predicted and predicted[1] in held
    assert predicted[1] in meta["holdout"]["absent_from_train"]["keys"]
    assert len(re.findall(r"^  [1-5]\. ", out, flags=re.M)) == 10  # top-5 tails, 5 nearest
    evaluation = json.loads((ds / "models" / "vl" / "eval_test_correct.json").read_text())
    assert evaluation["entities"]["unseen"]["count"] > 0 and "neighbours" in evaluation
    # a rerun reuses the store and the finished runs; trained again from scratch: the same numbers
    again, err = demo(offline)
    assert again == out and "reusing it" in err
    shutil.rmtree(ds / "models")
    assert demo(offline)[0] == out


def test_trained_vl_is_not_below_the_nearest_neighbours_on_unseen_entities(offline):
    """Real WordNet text, real MiniLM features, 600 WN9-IMG entities: with the defaults a user
    gets, the VL model's MRR on queries touching an entity unseen in training is at least the
    untrained nearest-neighbour lookup's over the same features, and on queries between seen
    entities at least the structure-only model's."""
    args = ["--data-dir", str(offline), "demo", "--entities", "600", "--dim", "32", "--epochs", "12"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output + str(done.exception)
    rows = table_rows(done.stdout)
    structure, vl, neighbours, with_mentions = (rows[label] for label in ROWS)
    assert vl[4] >= neighbours[4] > 0.0  # unseen entities: MRR
    assert vl[4] >= with_mentions[4]  # and the lookup that also reads the texts' mentions
    assert vl[2] >= structure[2]  # seen entities: MRR

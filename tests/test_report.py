"""`vlkge report`: MRR chart + plots data + top-k HTML, rendered in headless Chromium."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from vlkge.cli import app
from vlkge.config import load_config
from vlkge.graph import Graph, write_graph
from vlkge.reports import sample_queries, top_predictions
from vlkge.training import Trainer

MAGENTA = (255, 0, 255)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def art_graph(data: Path) -> Graph:
    """12 artworks with images (artwork a0 pure magenta) by 3 artists, in 2 styles."""
    ds = data / "arts"
    (ds / "img").mkdir(parents=True)
    artworks = [f"a{i}" for i in range(12)]
    others = ["Anna", "Bruno", "Carla", "Realism", "Cubism"]
    keys = artworks + others
    images = []
    for i, key in enumerate(artworks):
        color = MAGENTA if i == 0 else (20 * i, 100, 60)
        Image.new("RGB", (48, 32), color).save(ds / "img" / f"{key}.png")
        images.append([f"img/{key}.png"])
    images += [[] for _ in others]
    n = len(keys)
    entities = pl.DataFrame(
        {
            "entity_id": np.arange(n, dtype=np.int32),
            "key": keys,
            "type": ["artwork"] * 12 + ["artist"] * 3 + ["style"] * 2,
            "name": keys,
            "text": [None] * 12 + others,
            "images": images,
        },
        schema_overrides={"text": pl.String, "images": pl.List(pl.String)},
    )
    relations = pl.DataFrame({"relation_id": np.arange(2, dtype=np.int32), "key": ["byArtist", "hasStyle"]})
    rows = []
    for i in range(12):
        split = "test" if i < 3 else "valid" if i < 5 else "train"
        rows.append((i, 0, 12 + i % 3, split))
        rows.append((i, 1, 15 + i % 2, split))
    triples = pl.DataFrame(
        rows,
        schema={"head": pl.Int32, "relation": pl.Int32, "tail": pl.Int32, "split": pl.String},
        orient="row",
    )
    protocol = {"directions": "tail", "candidate_pools": "per_relation", "inductive": True}
    return write_graph(ds / "graph", entities, relations, triples, {"dataset": "arts", "protocol": protocol})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Graph]:
    data = tmp_path_factory.mktemp("report") / "data"
    graph = art_graph(data)
    params = load_config(
        overrides={
            "model": {"backbone": "distmult", "dim": 8},
            "train": {"epochs": 3, "batch_size": 8, "negatives": 4, "device": "cpu", "eval_every": 1},
        }
    )
    run_dir = data / "arts" / "models" / "tiny"
    Trainer(graph, params, run_dir).fit(show=False, log=None)
    return run_dir, graph


def test_top_predictions_stay_in_pool(run: tuple[Path, Graph]) -> None:
    run_dir, graph = run
    from vlkge.runs import load_model

    model = load_model(run_dir, graph)
    queries = top_predictions(model, graph, sample_queries(graph, "test", 2, seed=0), k=5)
    assert len(queries) == 4  # 2 per relation
    for q in queries:
        pool = {12, 13, 14} if q.relation == 0 else {15, 16}
        assert set(q.top) <= pool and len(q.top) == len(pool)
        assert q.scores == sorted(q.scores, reverse=True)


def test_report_files_and_chromium_render(run: tuple[Path, Graph], tmp_path: Path) -> None:
    run_dir, _ = run
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--per-relation", "3"])
    assert result.exit_code == 0, result.output
    png = out / "per_relation_mrr.png"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 300
    rows = list(csv.DictReader((out / "per_relation_mrr.csv").open()))
    assert {r["relation"] for r in rows} == {"byArtist", "hasStyle"}
    assert all(0.0 < float(r["mrr"]) <= 1.0 for r in rows)
    page = (out / "topk.html").read_text()
    assert page.count("<tr>") == 1 + 6 and "data:image/jpeg;base64," in page
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
    flags += [f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1600"]
    done = subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", (out / "topk.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), done.stderr[-2000:]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", (out / "topk.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count("<img") >= 6 and "byArtist" in dom
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    # the embedded magenta artwork (a0 is a test query, or a predicted image) is drawn on screen
    near = (np.abs(pixels - np.array(MAGENTA)).sum(axis=1) < 40).sum()
    texty = (pixels.sum(axis=1) < 200).sum()
    assert texty > 100  # text was rendered
    assert near > 200, "the magenta thumbnail was not rendered"


def test_report_from_zero_shot_results(run: tuple[Path, Graph], tmp_path: Path) -> None:
    _, graph = run
    data = graph.root.parent.parent
    results = {
        "overall": {"mrr": 0.5, "count": 2},
        "per_relation": {"byArtist": {"mrr": 0.75, "count": 1}, "hasStyle": {"mrr": 0.25, "count": 1}},
        "setup": {"split": "test", "candidate_pools": "per_relation"},
        "predictions": [
            {
                "head": "a0",
                "relation": "byArtist",
                "answer": "Anna",
                "top": ["Bruno", "Anna"],
                "scores": [0.9, 0.8],
            },
            {"head": "a1", "relation": "hasStyle", "answer": "Cubism", "top": ["Cubism"], "scores": [0.7]},
        ],
    }
    source = tmp_path / "zeroshot.json"
    source.write_text(json.dumps(results))
    out = tmp_path / "zs-report"
    args = ["--data-dir", str(data), "report", str(source), "--dataset", "arts", "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader((out / "per_relation_mrr.csv").open()))
    assert [r["relation"] for r in rows] == ["byArtist", "hasStyle"]  # best first
    page = (out / "topk.html").read_text()
    assert page.count("✓ answer") == 2 and "zero-shot" in page

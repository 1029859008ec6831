"""`vlkge predict`: a new entity from a real image and a text, scored like a graph entity."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from tests.vl_data import IMAGES, UNSEEN, encoded_project, image_files, tiny_clip, vl_params
from vlkge.errors import InputError
from vlkge.graph import read_graph
from vlkge.predict import CandidateIndex, encode_query, predict
from vlkge.runs import load_run
from vlkge.training import Trainer

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = tmp_path_factory.mktemp("predict") / "data"
    graph = encoded_project(data)
    run_dir = data / "tiny-vl" / "models" / "vl"
    # no neighbour votes: a known entity is not its own look-alike, a new one with its features is
    # (tests/test_votes.py checks the votes of new entities)
    params = vl_params(modalities=["visual", "textual"], votes=0.0)
    Trainer(graph, params, run_dir).fit(show=False, log=None)
    return data, run_dir


def test_a_known_entitys_image_and_text_give_back_that_entity(run):
    _, run_dir = run
    run = load_run(run_dir, device="cpu")
    model, graph = run.model, run.graph
    entity = 3
    text = graph.entities["text"][entity]
    query = encode_query(tiny_clip(), image_files(8)[entity], text, run.features)
    result = predict(model, graph, query, "next", k=6)
    assert result.nearest[0]["key"] == f"e{entity}"
    assert result.nearest[0]["score"] == pytest.approx(1.0, abs=1e-4)
    # the new entity scores every other entity as the known one does (the known one is not its own
    # neighbour; the new one, with the same features, is its nearest)
    with torch.no_grad():
        expected = model.score_tails(torch.tensor([entity]), torch.tensor([0]))[0].topk(6)
    got = [(a["entity_id"], a["score"]) for a in result.answers if a["entity_id"] != entity][:5]
    want = [
        (i, v)
        for i, v in zip(expected.indices.tolist(), expected.values.tolist(), strict=True)
        if i != entity
    ][:5]
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], abs=1e-4)
    assert result.answers[0]["name"].startswith("thing ")
    heads = predict(model, graph, query, "next", k=6, head=True)
    with torch.no_grad():
        expected = model.score_heads(torch.tensor([0]), torch.tensor([entity]))[0].topk(6)
    got = [a["entity_id"] for a in heads.answers if a["entity_id"] != entity][:5]
    assert got == [i for i in expected.indices.tolist() if i != entity][:5]


def test_faiss_search_agrees_with_exact_search():
    torch.manual_seed(0)
    table, queries = torch.randn(300, 8), torch.randn(4, 8)
    allowed = torch.ones(300, dtype=torch.bool)
    allowed[::7] = False
    for kernel in ("dot", "l2"):
        exact = CandidateIndex(table, kernel, margin=1.0, allowed=allowed, mode="exact").search(queries, 5)
        fast = CandidateIndex(table, kernel, margin=1.0, allowed=allowed, mode="faiss").search(queries, 5)
        assert torch.equal(exact[1], fast[1])
        assert torch.allclose(exact[0], fast[0], atol=1e-4)
        assert allowed[exact[1]].all()


def test_cli_prints_answers_and_refuses_bad_queries(run, tmp_path):
    from vlkge.cli import app

    data, run_dir = run
    runner = CliRunner()
    image = image_files(8)[5]
    done = runner.invoke(
        app,
        [
            "--data-dir",
            str(data),
            "predict",
            str(run_dir),
            "--relation",
            "group_of",
            "--image",
            str(image),
            "--text",
            "thing 5, member of group 1",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "top 5 tails (new, group_of, ?)" in done.output
    nearest = done.output.split("nearest entities")[1].splitlines()[1]
    assert "e5" in nearest.split() and "1.0000" in nearest
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read the query image"):
        encode_query(tiny_clip(), bad, None, load_run(run_dir).features)
    done = runner.invoke(
        app, ["--data-dir", str(data), "predict", str(run_dir), "--relation", "nope", "--text", "x"]
    )
    assert isinstance(done.exception, InputError) and "unknown relation" in str(done.exception)


@pytest.mark.parametrize("rows", ["features", "neutral"])
def test_a_new_entity_is_scored_as_the_model_scores_an_unseen_one(run, rows):
    """Structure + features with the prior (the defaults: features-mode rows; and neutral ones):
    a new entity with the features of the graph's entity that is absent from train gets the
    scores the model gives that entity (itself apart), both directions."""
    data, _ = run
    graph = read_graph(data / "tiny-vl" / "graph")
    run_dir = data / "tiny-vl" / "models" / f"vl-structure-{rows}"
    params = vl_params() if rows == "features" else vl_params(without_structure=rows)
    Trainer(graph, params, run_dir).fit(show=False, log=None)
    opened = load_run(run_dir, device="cpu")
    model = opened.model
    assert model.prior is not None and model.entity.neutral == (rows == "neutral")
    text = graph.entities["text"][UNSEEN]
    query = encode_query(tiny_clip(), None, text, opened.features)
    for head in (False, True):
        result = predict(model, opened.graph, query, "next", k=8, head=head)
        with torch.no_grad():
            u, r = torch.tensor([UNSEEN]), torch.tensor([0])
            scores = (model.score_heads(r, u) if head else model.score_tails(u, r))[0]
        got = {a["entity_id"]: a["score"] for a in result.answers if a["entity_id"] != UNSEEN}
        assert got and all(v == pytest.approx(float(scores[i]), abs=1e-4) for i, v in got.items())
    assert result.nearest_by == "feature similarity"

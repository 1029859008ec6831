"""The features-only nearest-neighbour baseline: ranks computed by hand on a tiny graph (filters per
direction, ties, pools, the self rule, entities sharing no modality), the averaging over the
modalities both entities have, and the same figures from `vlkge zeroshot --mode neighbours` as
beside a run in `vlkge evaluate`."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import make_graph
from tests.vl_data import IMAGES, encode_tiny, write_tiny_vl_graph
from vlkge.cli import app
from vlkge.evaluation import evaluate, rank_triples
from vlkge.metric_tables import compact_metrics
from vlkge.neighbours import NO_SHARED, SELF, NeighbourFeatures, NeighbourScorer, baseline_sets
from vlkge.ranking import Filters, candidate_pools

# text: e0 and e1 identical, e2 at cosine .8 (and .6 to e3), e3 orthogonal, e4 opposite, e5 none
TEXT = [[1.0, 0.0], [2.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]]
HAS_TEXT = [True, True, True, True, True, False]
# image: e0 and e5 identical, e2 orthogonal to both; the others none
IMAGE = [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
HAS_IMAGE = [True, False, True, False, False, True]


def scorer(modalities: str = "text") -> NeighbourScorer:
    blocks = {"text": (TEXT, HAS_TEXT), "image": (IMAGE, HAS_IMAGE)}
    chosen = ["image", "text"] if modalities == "both" else [modalities]
    return NeighbourScorer(
        NeighbourFeatures(
            [torch.tensor(blocks[m][0]) for m in chosen], [torch.tensor(blocks[m][1]) for m in chosen]
        )
    )


def ranks_of(model, graph, **kwargs) -> dict[tuple[str, tuple[int, int, int]], tuple[int, int]]:
    """(direction, test triple) → (optimistic, pessimistic) rank."""
    filters = Filters.build(graph.all_triples(), graph.num_relations, "correct")
    test = graph.split("test")
    result = rank_triples(model, test, filters, num_relations=graph.num_relations, **kwargs)
    n = len(test)
    return {
        (("head", "tail")[int(d)], tuple(test[i % n].tolist())): (int(o), int(p))
        for i, (d, o, p) in enumerate(
            zip(result.direction, result.optimistic, result.pessimistic, strict=True)
        )
    }


def test_similarity_rows_by_hand():
    sims = scorer("text").similarity(torch.tensor([0, 5]))
    assert torch.allclose(sims[0], torch.tensor([SELF, 1.0, 0.8, 0.0, -1.0, NO_SHARED]))
    assert torch.equal(sims[1], torch.tensor([NO_SHARED] * 5 + [SELF]))  # e5 has no text
    both = scorer("both").similarity(torch.tensor([0, 5, 2]))
    # e0–e1 text only, e0–e2 mean(.8 text, 0 image), e0–e5 image only (e5 has no text)
    assert torch.allclose(both[0], torch.tensor([SELF, 1.0, 0.4, 0.0, -1.0, 1.0]))
    assert torch.allclose(both[1], torch.tensor([1.0, NO_SHARED, 0.0, NO_SHARED, NO_SHARED, SELF]))
    assert torch.allclose(both[2], torch.tensor([0.4, 0.8, SELF, 0.6, -0.8, 0.0]))


def test_filtered_ranks_ties_and_the_self_rule_by_hand(tmp_path):
    triples = {
        "train": [(0, 0, 2), (4, 1, 1)],
        "valid": [],
        "test": [(0, 0, 3), (1, 0, 1), (5, 0, 4)],
    }
    graph = make_graph(tmp_path / "g", triples, num_entities=6, num_relations=2)
    got = ranks_of(scorer("text"), graph)
    # (e0, r0, ?): e2 (.8) is a known tail of (e0, r0): filtered; e1 (1.0) above e3 (0); e0 itself last
    assert got["tail", (0, 0, 3)] == (2, 2)
    # (?, r0, e3) from e3: e2 (.6) above; e1, e4 tie with the answer e0 (all 0): ranks 2..4
    assert got["head", (0, 0, 3)] == (2, 4)
    # a self-loop: the answer is the anchor, which ranks below all five other candidates
    assert got["tail", (1, 0, 1)] == (6, 6) and got["head", (1, 0, 1)] == (6, 6)
    # e5 has no text: every other candidate ties at NO_SHARED, the answer among them (mean rank 3)
    assert got["tail", (5, 0, 4)] == (1, 5)
    # (?, r0, e4) from e4: e0 and e1 at -1, e2 at -.8, e3 at 0 all above e5 (no text); none filtered
    assert got["head", (5, 0, 4)] == (5, 5)
    metrics = evaluate(scorer("text"), graph, "test")
    expected = [2, 3, 6, 6, 3, 5]  # realistic ranks of the six queries
    assert metrics["overall"]["mrr"] == pytest.approx(sum(1 / r for r in expected) / 6)


def test_candidate_pools_and_tail_direction_by_hand(tmp_path):
    # pools per relation, from train and valid: r0's tails are {e2, e3, e4}, r1's {e1, e5}; tail
    # queries only
    train = [(0, 0, 2), (4, 1, 1), (3, 0, 4), (5, 0, 3)]
    triples = {"train": train, "valid": [(2, 1, 5)], "test": [(0, 0, 3)]}
    protocol = {"directions": "tail", "candidate_pools": "per_relation"}
    graph = make_graph(tmp_path / "g", triples, num_entities=6, num_relations=2, protocol=protocol)
    model = scorer("both")
    got = ranks_of(model, graph, directions="tail", pools=candidate_pools(graph))
    # (e0, r0, ?) among {e2, e3, e4}: e2 filtered (train), e4 at -1 below e3 at 0; e1 (1.0) not in the pool
    assert got == {("tail", (0, 0, 3)): (1, 1)}
    metrics = evaluate(model, graph, "test")
    assert metrics["overall"]["count"] == 1 and "head" not in metrics
    assert metrics["overall"]["mrr"] == 1.0


def test_baseline_sets_follow_the_runs_feature_modalities():
    assert baseline_sets(["structural", "textual"]) == ["text"]
    assert baseline_sets(["structural", "visual", "textual"]) == ["text", "image", "both"]
    assert baseline_sets(["structural"]) == []


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """``data/tiny-vl``: the tiny inductive graph (entity 23 only in valid/test), encoded."""
    data = tmp_path_factory.mktemp("nn") / "data"
    encode_tiny(write_tiny_vl_graph(data / "tiny-vl"))
    return data


def train_and_evaluate(data, tmp_path, name: str, *flags: str) -> tuple[dict, dict, str]:
    """Train a 2-epoch run ``name`` with ``flags``, evaluate it; (full JSON, DVC metrics, table)."""
    base = ["--data-dir", str(data)]
    train = [*base, "train", "tiny-vl", *flags, "--dim", "16", "--epochs", "2", "--batch-size", "16"]
    runner = CliRunner()
    done = runner.invoke(app, [*train, "--negatives", "4", "--device", "cpu", "--out", name, "--quiet"])
    assert done.exit_code == 0, done.output
    full, compact = tmp_path / f"{name}.json", tmp_path / f"{name}_metrics.json"
    evaluate_args = [*base, "evaluate", name, "--dataset", "tiny-vl", "--out", str(full)]
    done = runner.invoke(app, [*evaluate_args, "--metrics", str(compact)])
    assert done.exit_code == 0, done.output
    return json.loads(full.read_text()), json.loads(compact.read_text()), done.output


@pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")
def test_evaluate_carries_the_same_baseline_as_the_standalone_command(project, tmp_path):
    vl = ["--frozen", "--modalities", "structural,visual,textual", "--features", "tiny-clip"]
    full, compact, table = train_and_evaluate(project, tmp_path, "vl", *vl)
    assert "nearest neighbours" in table and "model MRR / best neighbours MRR" in table
    beside = full["neighbours"]
    assert set(beside["results"]) == {"text", "image", "both"}
    assert set(beside["model_over_best"]) == {"overall", "seen", "unseen"}
    for modalities in ("text", "both"):
        out = tmp_path / f"nn_{modalities}.json"
        args = ["--data-dir", str(project), "zeroshot", "tiny-vl", "--mode", "neighbours"]
        args += ["--features", "tiny-clip", "--modalities", modalities, "--device", "cpu", "--out", str(out)]
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0, done.output
        alone = json.loads(out.read_text())
        here = beside["results"][modalities]
        for key in ("overall", "head", "tail", "per_relation", "entities"):
            assert alone[key] == here[key], key
        assert alone["entities"]["unseen"]["count"] > 0
        assert alone["setup"]["method"] == "neighbours" and alone["setup"]["modalities"] == modalities
    dvc = compact["neighbours"]
    assert dvc["text"]["unseen_entities"] == compact_metrics(beside["results"]["text"])["unseen_entities"]
    assert set(dvc["model_over_best"]) == {"overall", "seen_entities", "unseen_entities"}
    unseen = beside["model_over_best"]["unseen"]
    assert unseen["ratio"] == pytest.approx(full["entities"]["unseen"]["mrr"] / unseen["baseline_mrr"])


@pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")
def test_structure_only_runs_are_unchanged(project, tmp_path):
    full, compact, table = train_and_evaluate(project, tmp_path, "structure")
    assert "neighbours" not in full and "neighbours" not in compact and "neighbours" not in table


def test_neighbour_options_are_refused_in_prompt_mode_and_the_reverse(project):
    base = ["--data-dir", str(project), "zeroshot", "tiny-vl"]
    refused = CliRunner().invoke(app, [*base, "--modalities", "text"])
    assert "--mode neighbours only" in str(refused.exception)
    refused = CliRunner().invoke(app, [*base, "--mode", "neighbours", "--query", "text", "--weights", "w"])
    assert "--query, --weights: for --mode prompt only" in str(refused.exception)
    refused = CliRunner().invoke(app, [*base, "--mode", "neighbours", "--modalities", "sound"])
    assert "unknown modalities 'sound'" in str(refused.exception)


@pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")
def test_a_group_of_seeds_carries_one_baseline_and_the_ratio_of_its_mean(project, tmp_path, monkeypatch):
    import vlkge.neighbours

    calls = []
    original = vlkge.neighbours.neighbour_evaluation
    monkeypatch.setattr(
        vlkge.neighbours, "neighbour_evaluation", lambda *a, **k: calls.append(a[2]) or original(*a, **k)
    )
    vl = ["--frozen", "--modalities", "structural,textual", "--features", "tiny-clip"]
    full, compact, table = train_and_evaluate(
        project, tmp_path, "vl-seeds", *vl, "--seed", "0", "--seeds", "2"
    )
    assert full["seeds"] == [0, 1] and "model MRR / best neighbours MRR" in table
    assert calls == ["text"]  # once for the group, not once per seed
    single, _, _ = train_and_evaluate(project, tmp_path, "vl-seed0", *vl, "--seed", "0")
    # the baseline is that of any one seed's queries, computed once for the group
    assert full["neighbours"]["results"] == single["neighbours"]["results"]
    unseen = full["neighbours"]["model_over_best"]["unseen"]
    assert unseen["model_mrr"] == pytest.approx(full["entities"]["unseen"]["mrr"])
    assert unseen["ratio"] == pytest.approx(full["entities"]["unseen"]["mrr"] / unseen["baseline_mrr"])
    assert compact["neighbours"]["model_over_best"]["unseen_entities"] == pytest.approx(unseen["ratio"])

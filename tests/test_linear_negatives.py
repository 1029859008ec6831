"""Negatives scored from the parts of linear fusions (vlkge/representations/linear_negatives.py)
equal the scores of the fused rows, values and gradients, in every case a training step meets."""

from __future__ import annotations

import pytest
import torch

from tests.vl_data import IMAGES, UNSEEN, encode_tiny, vl_params, write_tiny_vl_graph
from vlkge.features.inputs import load_entity_inputs
from vlkge.model import build_model
from vlkge.representations import linear_negatives

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    graph = write_tiny_vl_graph(tmp_path_factory.mktemp("vl") / "tiny-vl")
    encode_tiny(graph)
    return graph


def _step(model, batch, replacement, corrupt_head, drop, linear):
    """A training step's scores and the gradients of a loss of them, per parameter name."""
    model.zero_grad(set_to_none=True)
    rows = model.entity.for_batch(batch, replacement, drop=drop, linear=linear)
    scores = model.score_batch(rows, corrupt_head)
    (scores.positive.sum() + scores.negative.square().sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return rows, scores, grads


@pytest.mark.parametrize("backbone", ["distmult", "complex"])  # complex: whole complex parts (fused)
@pytest.mark.parametrize("fusion", ["average", "weighted", "concat"])
@pytest.mark.parametrize("without_structure", ["features", "neutral"])
@pytest.mark.parametrize("dropped", [False, True])
@pytest.mark.parametrize(("scarce", "rows_per_query"), [(False, 0.0), (True, 0.0), (False, 1e9)])
def test_negatives_from_the_parts_equal_those_of_the_fused_rows(
    tiny, monkeypatch, backbone, fusion, without_structure, dropped, scarce, rows_per_query
):
    """rows_per_query 0: the queries go to each feature space; 1e9: the features are projected."""
    monkeypatch.setattr(linear_negatives, "ROWS_PER_QUERY", rows_per_query)
    graph = tiny
    params = vl_params(backbone=backbone, fusion=fusion, without_structure=without_structure)
    torch.manual_seed(0)
    model = build_model(params, graph.num_entities, graph.num_relations, load_entity_inputs(graph, params))
    reps = model.entity
    with torch.no_grad():
        if fusion == "weighted":
            reps.fusion.logits.copy_(torch.tensor([0.3, -0.5, 0.8]))
        if fusion == "concat":  # blocks other than the start's scaled identity
            reps.fusion.out.weight.add_(0.2 * torch.randn(reps.fusion.out.weight.shape))
        for projection in reps.projections.values():
            projection.bias.uniform_(-0.5, 0.5)
    for m in reps.feature_modalities:
        reps.scarce[m] = scarce
    gen = torch.Generator().manual_seed(1)
    batch = torch.as_tensor(graph.triples["train"][:12], dtype=torch.long)
    replacement = torch.randint(0, graph.num_entities, (12, 7), generator=gen)
    replacement[0, 0] = UNSEEN  # an entity without structure
    corrupt_head = torch.rand(12, 7, generator=gen) < 0.5
    drop = (lambda n: torch.ones(n, dtype=torch.bool)) if dropped else None
    full_rows, full, full_grads = _step(model, batch, replacement, corrupt_head, drop, linear=False)
    rows, split, grads = _step(model, batch, replacement, corrupt_head, drop, linear=True)
    assert full_rows.negatives is None and rows.negatives is not None
    assert len(rows.table) < len(rows.ids)  # only the heads' and tails' rows were computed
    torch.testing.assert_close(split.positive, full.positive, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(split.negative, full.negative, rtol=1e-5, atol=1e-5)
    assert grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        torch.testing.assert_close(grads[name].to_dense(), grad.to_dense(), rtol=1e-4, atol=1e-5, msg=name)


def test_a_fusion_that_reads_the_parts_and_derived_imaginary_parts_compute_every_row(tiny):
    graph = tiny
    for spec in ({"fusion": "attention"}, {"backbone": "complex", "imaginary": "projection"}):
        params = vl_params(**spec)
        model = build_model(
            params, graph.num_entities, graph.num_relations, load_entity_inputs(graph, params)
        )
        batch = torch.as_tensor(graph.triples["train"][:4], dtype=torch.long)
        replacement = torch.randint(0, graph.num_entities, (4, 3))
        rows = model.entity.for_batch(batch, replacement, linear=True)
        assert rows.negatives is None and len(rows.table) == len(rows.ids)

"""The similarity prior of multimodal models (score = backbone + w_r · feature similarity) and the
neutral representation of entities without structure, on the tiny real-image graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.vl_data import IMAGES, UNSEEN, vl_params
from vlkge import prior as prior_module
from vlkge.features.inputs import load_entity_inputs
from vlkge.model import build_model
from vlkge.neighbours import load_scorer
from vlkge.optim import OptimizerPair
from vlkge.training import Trainer, softplus_loss

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="test photos not found")


@pytest.fixture(scope="module")
def tiny(tiny_vl):
    return tiny_vl


def _model(graph, **spec):
    params = vl_params(**spec)
    torch.manual_seed(0)
    return build_model(params, graph.num_entities, graph.num_relations, load_entity_inputs(graph, params))


def _by_hand(reps, a: int, b: int) -> float:
    """Mean cosine over the feature modalities both entities have; 0 for itself or none shared."""
    if a == b:
        return 0.0
    values = []
    for m in reps.feature_modalities:
        column = reps.mask[:, reps.modalities.index(m)]
        if column[a] and column[b]:
            table = reps.feature_table(m)
            values.append(float(F.cosine_similarity(table[a], table[b], dim=0)))
    return sum(values) / len(values) if values else 0.0


def test_similarity_is_the_mean_cosine_over_shared_modalities(tiny):
    reps = _model(tiny, similarity=1.0).entity  # entities 0..7 have a photo, all have text
    pairs = [(0, 1), (0, 9), (9, 12), (5, 5), (UNSEEN, 2)]
    a, b = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    got = reps.similarity(a, b)
    assert got.tolist() == pytest.approx([_by_hand(reps, x, y) for x, y in pairs], abs=1e-6)
    assert got[3] == 0.0  # an entity is not its own neighbour
    every = reps.similarity_to_all(a)
    assert every[torch.arange(len(a)), b].tolist() == pytest.approx(got.tolist(), abs=1e-6)
    assert torch.all(every[torch.arange(len(a)), a] == 0.0)


@pytest.mark.parametrize("scarce", [False, True])  # photos: the sampled kernel / the pairs that have them
def test_batch_similarities_equal_the_pairwise_ones(tiny, scarce):
    model = _model(tiny, similarity=1.0)
    reps = model.entity
    reps.scarce["visual"] = scarce
    torch.manual_seed(1)
    batch = torch.tensor([[0, 0, 1], [2, 1, 0], [9, 0, 10], [12, 1, 12]])  # the last a self-loop
    replacement = torch.randint(0, 23, (4, 6))
    replacement[0, 0] = 0  # corrupting the tail of (0, 0, 1) into 0 itself: a self pair
    corrupt_head = torch.rand(4, 6) < 0.5
    corrupt_head[0, 0] = False
    rows = reps.for_batch(batch, replacement)
    ends = tuple(reps.unit_rows(rows.global_ids(rows.batch[:, i])) for i in (0, 2))
    positive, negative = reps.similarity_in_batch(rows, corrupt_head, ends)
    assert positive.tolist() == pytest.approx(reps.similarity(batch[:, 0], batch[:, 2]).tolist(), abs=1e-6)
    heads = torch.where(corrupt_head, replacement, batch[:, :1])
    tails = torch.where(corrupt_head, batch[:, 2:], replacement)
    assert torch.allclose(negative, reps.similarity(heads, tails), atol=1e-6)
    assert negative[0, 0] == 0.0 and positive[3] == 0.0


def _typed(model):
    """Random typing weights and offsets (they start at zero)."""
    with torch.no_grad():
        model.prior.typing.normal_()
        model.prior.unstructured.normal_()
    return model


@pytest.mark.parametrize("table_per_pair", [0, 10**6])  # typing read per pair / from the table
def test_batch_priors_equal_the_pairwise_ones(tiny, monkeypatch, table_per_pair):
    monkeypatch.setattr(prior_module, "TYPING_TABLE_PER_PAIR", table_per_pair)
    model = _typed(_model(tiny, similarity=0.5, typing=True, votes=0.0))  # votes: tests/test_votes.py
    batch = torch.tensor([[0, 0, 1], [2, 1, UNSEEN], [9, 0, 10], [12, 1, 12]])
    replacement = torch.randint(0, 24, (4, 6))
    corrupt_head = torch.rand(4, 6) < 0.5
    rows = model.entity.for_batch(batch, replacement)
    with torch.no_grad():
        prior = model.prior.in_batch(model.entity, rows, corrupt_head)
        h, r, t = batch.unbind(1)
        assert torch.allclose(prior.positive, model.prior_of(h, r, t), atol=1e-5)
        heads = torch.where(corrupt_head, replacement, batch[:, :1])
        tails = torch.where(corrupt_head, batch[:, 2:], replacement)
        rr = r.unsqueeze(1).expand_as(heads)
        assert torch.allclose(prior.negative, model.prior_of(heads, rr, tails), atol=1e-5)
        # the features-only view: similarity and typing of both sides, no offsets, whatever the
        # structure of the two entities
        assert torch.allclose(prior.alone_positive, _alone(model, h, r, t), atol=1e-5)
        assert torch.allclose(prior.alone_negative, _alone(model, heads, rr, tails), atol=1e-5)


@pytest.mark.parametrize("scarce", [False, True])  # photos read for every entity / their holders
def test_batch_typing_from_the_table_has_the_gradients_of_the_sampled_one(tiny, monkeypatch, scarce):
    model = _typed(_model(tiny, similarity=0.5, typing=True, votes=0.0))
    model.entity.scarce["visual"] = scarce
    batch = torch.tensor([[0, 0, 1], [2, 1, UNSEEN], [9, 0, 10], [12, 1, 12]])
    replacement = torch.randint(0, 24, (4, 6), generator=torch.Generator().manual_seed(3))
    corrupt_head = torch.rand(4, 6, generator=torch.Generator().manual_seed(4)) < 0.5
    rows = model.entity.for_batch(batch, replacement)
    got = []
    for table_per_pair in (0, 10**6):
        monkeypatch.setattr(prior_module, "TYPING_TABLE_PER_PAIR", table_per_pair)
        prior = model.prior.in_batch(model.entity, rows, corrupt_head)
        weights = torch.linspace(-1, 2, 24).view(4, 6)
        loss = (prior.alone_negative * weights).sum() + prior.alone_positive.sum()
        got.append(torch.autograd.grad(loss, model.prior.typing)[0])
    torch.testing.assert_close(got[0], got[1])
    assert got[0].abs().sum() > 0


def _alone(model, h, r, t):
    reps, prior = model.entity, model.prior
    unit = [torch.cat(reps.unit_rows(e), dim=-1) for e in (h, t)]  # [*, D] each
    fit = (prior.typing[0, r] * unit[0]).sum(-1) + (prior.typing[1, r] * unit[1]).sum(-1)
    return prior.alone_weight[r] * reps.similarity(h, t) + fit


def test_typing_scores_only_pairs_with_an_entity_without_structure(tiny):
    """Two entities with structure: the prior is the weighed similarity alone (the backbone knows
    their types); one without: the features-only view with the offsets."""
    model = _typed(_model(tiny, similarity=0.5, typing=True))
    r = torch.tensor([0, 1])
    with torch.no_grad():
        seen = model.prior_of(torch.tensor([0, 9]), r, torch.tensor([1, 10]))
        assert torch.allclose(
            seen, 0.5 * model.entity.similarity(torch.tensor([0, 9]), torch.tensor([1, 10]))
        )
        h, t = torch.tensor([0, 2]), torch.tensor([UNSEEN, UNSEEN])
        mixed = model.prior_of(h, r, t)
        offset = model.prior.unstructured[1, r]
        assert torch.allclose(mixed, _alone(model, h, r, t) + offset, atol=1e-5)


def test_prior_loss_trains_the_typing_when_every_entity_has_structure(tiny):
    """Jointly, typing never scores a pair of two structured entities, so only the features-only
    loss (train.prior_loss) reaches it."""
    grads = []
    for weight in (0.0, 1.0):
        model = _model(tiny, similarity=0.5, typing=True)
        batch = torch.tensor([[0, 0, 1], [9, 0, 10]])
        replacement = torch.tensor([[3, 4], [5, 6]])
        corrupt_head = torch.tensor([[False, True], [True, False]])
        scores = model.score_batch(model.entity.for_batch(batch, replacement), corrupt_head)
        loss = softplus_loss(scores.positive, scores.negative, torch.ones(2, 2))
        loss = loss + weight * softplus_loss(scores.prior_positive, scores.prior_negative, torch.ones(2, 2))
        loss.backward()
        grads.append(float(model.prior.typing.grad.abs().sum()))
    assert grads[0] == 0.0 and grads[1] > 0.0


@pytest.mark.parametrize("backbone", ["distmult", "complex"])
def test_one_vs_all_scores_equal_the_elementwise_ones(tiny, backbone):
    model = _typed(_model(tiny, similarity=0.7, backbone=backbone, typing=True))
    h, r = torch.tensor([0, 9, UNSEEN]), torch.tensor([0, 1, 1])
    every = torch.arange(tiny.num_entities)
    with torch.no_grad():
        tails = model.score_tails(h, r)
        heads = model.score_heads(r, h)
        for i in range(len(h)):
            one = model.score_hrt(h[i].expand_as(every), r[i].expand_as(every), every)
            assert torch.allclose(tails[i], one, atol=1e-5)
            one = model.score_hrt(every, r[i].expand_as(every), h[i].expand_as(every))
            assert torch.allclose(heads[i], one, atol=1e-5)


def test_prior_alone_scores_like_the_neighbours_baseline(tiny):
    """With the backbone silenced (relation rows zero) the model scores every candidate by the
    baseline's similarity; only the anchor itself differs (neutral 0 here, last there)."""
    model = _model(tiny, similarity=1.0, typing=False, votes=0.0)
    with torch.no_grad():
        model.relation.weight.zero_()
        anchors = torch.arange(tiny.num_entities)
        ours = model.score_tails(anchors, torch.zeros_like(anchors))
        baseline = load_scorer(tiny, tiny.root.parent / "features" / "tiny-clip", "both").similarity(anchors)
    off_self = ~torch.eye(tiny.num_entities, dtype=torch.bool)
    assert torch.allclose(ours[off_self], baseline[off_self], atol=1e-5)
    assert torch.all(ours.diagonal() == 0.0)


def test_neutral_entities_without_structure_are_zero(tiny):
    reps = _model(tiny, without_structure="neutral").entity
    drop = torch.zeros(tiny.num_entities, dtype=torch.bool)
    drop[3] = True
    with torch.no_grad():
        table = reps.all(drop_structure=drop)
        assert torch.all(table[UNSEEN] == 0) and torch.all(table[3] == 0)
        assert table[4].abs().sum() > 0
    # no structural part to be neutral against: every entity is its features
    features_only = _model(tiny, without_structure="neutral", modalities=["textual"]).entity
    with torch.no_grad():
        assert features_only.all()[UNSEEN].abs().sum() > 0


def test_training_moves_the_prior_weights_with_their_own_optimiser(tiny, tmp_path):
    params = vl_params(similarity=1.0).updated(
        {"train": {"shared_optimizer": "adam", "projection_lr": 0.01, "structure_dropout": 0.3}}
    )
    trainer = Trainer(tiny, params, tmp_path / "run")
    assert isinstance(trainer.optimizer, OptimizerPair)
    assert any(
        p is trainer.model.prior.weight for g in trainer.optimizer.parts[1].param_groups for p in g["params"]
    )
    before = trainer.model.prior.weight.detach().clone()
    trainer.fit(show=False, log=None)
    assert not torch.equal(before, trainer.model.prior.weight.detach())
    resumed = Trainer(tiny, params.updated({"train": {"epochs": 4}}), tmp_path / "run")
    resumed.resume()
    assert resumed.state.epoch == 3
    assert torch.equal(resumed.model.prior.weight, trainer.model.prior.weight)

"""Neighbour votes (vlkge/votes.py): the look-alikes' training triples as a prior term, checked
against sums written out by hand on the tiny real-image graph, in every form the model uses
(pairs, 1-vs-all rows, candidate pools, training batches with dropped structure, new entities)."""

from __future__ import annotations

import pytest
import torch

from tests.vl_data import IMAGES, UNSEEN, vl_params
from vlkge.features.inputs import load_entity_inputs
from vlkge.model import build_model
from vlkge.votes import HEAD, TAIL, NeighbourVotes, neighbour_table, voters_of

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="test photos not found")


@pytest.fixture(scope="module")
def tiny(tiny_vl):
    return tiny_vl


@pytest.fixture(scope="module")
def model(tiny):
    params = vl_params(votes=0.5, vote_neighbours=4)
    torch.manual_seed(0)
    return build_model(params, tiny.num_entities, tiny.num_relations, load_entity_inputs(tiny, params))


def _by_hand(votes: NeighbourVotes, train: set, h: int, r: int, t: int) -> tuple[float, float]:
    fwd = sum(
        float(w)
        for n, w in zip(votes.neighbours[h], votes.weights[h], strict=True)
        if (int(n), r, t) in train
    )
    bwd = sum(
        float(w)
        for n, w in zip(votes.neighbours[t], votes.weights[t], strict=True)
        if (h, r, int(n)) in train
    )
    return fwd, bwd


def test_the_table_holds_each_entitys_most_similar_voters_but_itself(tiny, model):
    reps, votes = model.entity, model.prior.votes
    voters = voters_of(tiny.split("train"))
    assert UNSEEN not in voters.tolist()
    sims = reps.similarity_to_all(torch.arange(tiny.num_entities), voters)
    for e in range(tiny.num_entities):
        row = sims[e].clone()
        row[voters == e] = -float("inf")
        assert set(votes.neighbours[e].tolist()) == set(voters[row.topk(4).indices].tolist())
        assert e not in votes.neighbours[e].tolist()
        assert float(votes.weights[e].sum()) == pytest.approx(1.0, abs=1e-5)
        assert torch.all(votes.weights[e] >= 0)


def test_the_approximate_table_finds_the_exact_one_on_a_small_graph(tiny, model):
    voters = voters_of(tiny.split("train"))
    exact = neighbour_table(model.entity, voters, 4)
    approximate = neighbour_table(model.entity, voters, 4, exact_pairs=0)  # the inverted file
    assert torch.equal(torch.sort(exact[0]).values, torch.sort(approximate[0]).values)
    assert torch.allclose(exact[1].sum(1), approximate[1].sum(1))


def test_pair_votes_and_rows_equal_the_sums_by_hand(tiny, model):
    votes = model.prior.votes
    train = {tuple(x) for x in tiny.split("train").tolist()}
    n = tiny.num_entities
    everyone = torch.arange(n)
    seen = torch.ones(n, dtype=torch.bool)
    nonzero = 0
    for anchor in (0, 2, 9, UNSEEN):
        for r in (0, 1):
            fwd, bwd = votes.rows(torch.tensor([anchor]), torch.tensor([r]), TAIL)
            head_fwd, head_bwd = votes.rows(torch.tensor([anchor]), torch.tensor([r]), HEAD)
            pair = votes.pairs(torch.full((n,), anchor), torch.tensor(r), everyone, seen, seen)
            for c in range(n):
                want = _by_hand(votes, train, anchor, r, c)
                assert (float(fwd[0, c]), float(bwd[0, c])) == pytest.approx(want, abs=1e-5)
                assert (float(pair[0][c]), float(pair[1][c])) == pytest.approx(want, abs=1e-5)
                want_head = _by_hand(votes, train, c, r, anchor)
                assert (float(head_fwd[0, c]), float(head_bwd[0, c])) == pytest.approx(want_head, abs=1e-5)
                nonzero += sum(v > 0 for v in want + want_head)
            # a pool of candidates reads the same columns
            among = torch.tensor([5, 1, 20, 22])
            pooled = votes.rows(torch.tensor([anchor]), torch.tensor([r]), TAIL, among)
            assert torch.equal(pooled[0], fwd[:, among]) and torch.equal(pooled[1], bwd[:, among])
    assert nonzero > 20  # the graph gives the sums something to count


def test_summed_votes_and_the_tables_lookups_agree(tiny, model, monkeypatch):
    """Pairs read per-(entity, relation) sums where they fit, else k lookups through the table:
    the same values either way, with dropped entities masked alike."""
    votes = model.prior.votes
    assert votes.summed is not None
    monkeypatch.setattr("vlkge.votes.SUMMED_ENTRIES", 0)
    looked_up = NeighbourVotes(
        tiny.split("train"), tiny.num_entities, tiny.num_relations, votes.neighbours, votes.weights
    )
    assert looked_up.summed is None
    generator = torch.Generator().manual_seed(5)
    h, t = (torch.randint(0, tiny.num_entities, (40, 7), generator=generator) for _ in range(2))
    r = torch.randint(0, tiny.num_relations, (40, 1), generator=generator)
    train = tiny.split("train")[:40]
    h[: len(train), 0], t[: len(train), 0], r[: len(train), 0] = train[:, 0], train[:, 2], train[:, 1]
    h_seen, t_seen = (torch.rand(40, 7, generator=generator) < 0.8 for _ in range(2))
    summed, table = votes.pairs(h, r, t, h_seen, t_seen), looked_up.pairs(h, r, t, h_seen, t_seen)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(summed, table, strict=True))
    assert summed[0].count_nonzero() > 5 and summed[1].count_nonzero() > 5


def test_an_unseen_entitys_own_triples_never_vote(tiny, model):
    """UNSEEN has no training triples: about it only its look-alikes vote (fwd of a tail query),
    and a dropped entity counts as having none."""
    votes = model.prior.votes
    fwd, bwd = votes.rows(torch.tensor([UNSEEN]), torch.tensor([1]), TAIL)
    assert torch.all(bwd == 0) and fwd.sum() > 0
    h, t = torch.tensor([0, 0]), torch.tensor([1, 1])
    kept = votes.pairs(h, torch.tensor([1, 1]), t, torch.tensor([True, False]), torch.tensor([True, True]))
    dropped = votes.pairs(h, torch.tensor([1, 1]), t, torch.tensor([True, True]), torch.tensor([True, False]))
    assert kept[1][1] == 0 and dropped[0][1] == 0  # bwd needs the head's triples, fwd the tail's
    assert kept[0][0] == kept[0][1] and dropped[1][0] == dropped[1][1]


def test_a_new_entity_with_an_unseen_ones_features_gets_its_votes(tiny, model):
    reps, votes = model.entity, model.prior.votes
    features = {m: reps.feature_table(m)[UNSEEN : UNSEEN + 1] for m in reps.feature_modalities}
    present = {m: reps.mask[UNSEEN, reps.modalities.index(m)] for m in reps.feature_modalities}
    features = {m: f for m, f in features.items() if present[m]}
    similarity = reps.similarity_to_features(features)
    for side in (TAIL, HEAD):
        new = votes.for_new(similarity, torch.tensor([0]), side)
        known = votes.rows(torch.tensor([UNSEEN]), torch.tensor([0]), side)
        assert torch.allclose(new[0], known[0], atol=1e-5) and torch.allclose(new[1], known[1], atol=1e-5)


def test_batch_priors_with_votes_equal_the_pairwise_and_1_vs_all_ones(tiny, model):
    """The training batch, the pairwise prior and the evaluation's rows agree once votes are in;
    the votes' weights get a gradient from a batch."""
    torch.manual_seed(3)
    batch = torch.tensor([[0, 0, 1], [2, 1, 3], [9, 0, 10], [12, 1, 12]])
    replacement = torch.randint(0, 23, (4, 6))
    corrupt_head = torch.rand(4, 6) < 0.5
    rows = model.entity.for_batch(batch, replacement)
    prior = model.prior.in_batch(model.entity, rows, corrupt_head)
    h, r, t = batch.unbind(1)
    with torch.no_grad():
        assert torch.allclose(prior.positive, model.prior_of(h, r, t), atol=1e-5)
        heads = torch.where(corrupt_head, replacement, batch[:, :1])
        tails = torch.where(corrupt_head, batch[:, 2:], replacement)
        assert torch.allclose(
            prior.negative, model.prior_of(heads, r.unsqueeze(1).expand_as(heads), tails), atol=1e-5
        )
        every = model.prior.to_all(model.entity, h, r, TAIL)
        assert torch.allclose(every[torch.arange(4), t], model.prior_of(h, r, t), atol=1e-5)
        every = model.prior.to_all(model.entity, t, r, HEAD)
        assert torch.allclose(every[torch.arange(4), h], model.prior_of(h, r, t), atol=1e-5)
    (prior.positive.sum() - prior.negative.sum() + prior.alone_positive.sum()).backward()
    assert model.prior.vote.grad is not None and model.prior.vote.grad.abs().sum() > 0


def test_a_saved_neighbour_table_is_used_not_recomputed(tiny, model, monkeypatch):
    """A run's state holds its neighbour table; a model built from it votes through that table
    (rows and pairs alike) without searching again, and a state saved before the table was kept
    loads with the table computed from the features."""
    params = vl_params(votes=0.5, vote_neighbours=4)
    inputs = load_entity_inputs(tiny, params)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    # another table than the features give: each entity's neighbours in reverse order, weights swapped
    state["prior.vote_neighbours"] = state["prior.vote_neighbours"].flip(1)
    # a model built before its state is loaded (a resumed run) votes through the loaded table too
    resumed = build_model(params, tiny.num_entities, tiny.num_relations, inputs)
    monkeypatch.setattr("vlkge.votes.neighbour_table", lambda *a, **k: pytest.fail("searched again"))
    loaded = build_model(params, tiny.num_entities, tiny.num_relations, inputs, state)
    train = {tuple(x) for x in tiny.split("train").tolist()}
    h, r = torch.tensor([0, 9]), torch.tensor([0, 0])
    for each in (loaded, resumed):
        each.load_state_dict(state)
        votes = each.prior.votes
        assert torch.equal(votes.neighbours, state["prior.vote_neighbours"])
        fwd, bwd = votes.rows(h, r, TAIL)
        for b in range(2):
            for t in range(tiny.num_entities):
                want = _by_hand(votes, train, int(h[b]), int(r[b]), t)
                assert (float(fwd[b, t]), float(bwd[b, t])) == pytest.approx(want, abs=1e-6)
    assert not torch.equal(state["prior.vote_neighbours"], model.prior.votes.neighbours)
    monkeypatch.undo()

    old = {key: value for key, value in state.items() if not key.startswith("prior.vote_")}
    fresh = build_model(params, tiny.num_entities, tiny.num_relations, inputs, old)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.prior.votes.neighbours, model.prior.votes.neighbours)


def test_old_runs_load_without_votes():
    from vlkge.config import config_from_record

    params = vl_params().to_params()
    del params["model"]["votes"]
    assert config_from_record(params, source="old run").model.votes == 0.0


def test_calibration_fits_the_vote_weights_to_the_training_triples(tiny):
    """The fitted weights lower the fit's own loss below the start's, the same seed gives the same
    weights; the joint view keeps its start, 0."""
    from vlkge.calibration import _loss_at, calibrate_votes

    params = vl_params(votes=0.5, vote_neighbours=4)
    train, candidates = tiny.split("train"), tiny.in_train().nonzero().flatten()
    fitted = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(params, tiny.num_entities, tiny.num_relations, load_entity_inputs(tiny, params))
        start = model.prior.vote.detach().clone()
        before = _loss_at(model.prior, model.entity, train, candidates, 7)
        calibrate_votes(model.prior, model.entity, train, candidates, 7)
        after = _loss_at(model.prior, model.entity, train, candidates, 7)
        assert after < before
        assert not torch.equal(model.prior.vote.detach(), start)
        assert torch.equal(model.prior.vote[0], start[0])  # the joint view keeps its start
        assert torch.all(start[0] == 0)
        fitted.append(model.prior.vote.detach().clone())
    assert torch.equal(fitted[0], fitted[1])


def test_a_resumed_run_neither_searches_nor_fits_again(tiny, tmp_path, monkeypatch):
    from vlkge.training import Trainer

    params = vl_params(votes=0.5, vote_neighbours=4).updated({"train": {"epochs": 2}})
    trainer = Trainer(tiny, params, tmp_path / "run")
    trainer.fit(show=False, log=None)
    monkeypatch.setattr("vlkge.votes.neighbour_table", lambda *a, **k: pytest.fail("searched again"))
    monkeypatch.setattr("vlkge.training.calibrate_votes", lambda *a, **k: pytest.fail("fitted again"))
    resumed = Trainer(tiny, params.updated({"train": {"epochs": 3}}), tmp_path / "run")
    resumed.resume()
    assert torch.equal(resumed.model.prior.votes.neighbours, trainer.model.prior.votes.neighbours)
    assert torch.equal(resumed.model.prior.vote, trainer.model.prior.vote)
    resumed.fit(show=False, log=None)
    assert resumed.state.epoch == 3

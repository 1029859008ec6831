"""The three score forms of every backbone agree; the sampled form has the right gradients."""

from __future__ import annotations

import pytest
import torch

from vlkge import components, gathered
from vlkge.gathered import l1_all, sampled_dot, sampled_l1
from vlkge.interactions import make_interaction

BACKBONES = [("transe", 1), ("transe", 2), ("distmult", 2), ("complex", 2), ("rotate", 2)]
DIM, N, B = 6, 11, 4
#: the VL-KGE reference code's TransE: entities and relations L2-normalised in the forward pass
NORMALISED = {"normalize_entities": True, "normalize_relations": True}


def _tables(inter, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ent = torch.randn(N, inter.entity_width, generator=gen, dtype=torch.float64)
    rel = torch.randn(3, inter.relation_width, generator=gen, dtype=torch.float64)
    return ent, rel


@pytest.mark.parametrize(("name", "p"), BACKBONES)
def test_one_vs_all_matches_elementwise(name, p):
    inter = make_interaction(name, dim=DIM, p_norm=p)
    ent, rel = _tables(inter)
    h, r, t = torch.tensor([0, 3, 5, 7]), torch.tensor([0, 1, 2, 1]), torch.tensor([1, 2, 9, 10])
    tails = inter.score_tails(ent[h], rel[r], ent)  # [B, N]
    heads = inter.score_heads(rel[r], ent[t], ent)
    for b in range(B):
        expected_t = inter.score(ent[h[b]].expand(N, -1), rel[r[b]].expand(N, -1), ent)
        expected_h = inter.score(ent, rel[r[b]].expand(N, -1), ent[t[b]].expand(N, -1))
        torch.testing.assert_close(tails[b], expected_t, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(heads[b], expected_h, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "p"), BACKBONES)
def test_sampled_form_matches_elementwise(name, p):
    inter = make_interaction(name, dim=DIM, p_norm=p)
    ent, rel = _tables(inter, seed=1)
    h, r, t = torch.tensor([0, 3, 5, 7]), torch.tensor([0, 1, 2, 1]), torch.tensor([1, 2, 9, 10])
    gen = torch.Generator().manual_seed(2)
    index = torch.randint(0, N, (B, 5), generator=gen)
    corrupt_head = torch.rand(B, 5, generator=gen) < 0.5
    queries = torch.stack([inter.head_query(rel[r], ent[t]), inter.tail_query(ent[h], rel[r])], dim=1)
    got = inter.compare_sampled(queries, ent, index, (~corrupt_head).long())
    heads = torch.where(corrupt_head, index, h[:, None])
    tails = torch.where(corrupt_head, t[:, None], index)
    expected = inter.score(ent[heads], rel[r][:, None, :], ent[tails])
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_blocked_l1_matches_cdist_across_block_edges(monkeypatch):
    """Blocks that cut queries and candidates unevenly (35 queries, 23 candidates) give cdist's
    distances; with a gradient asked for, it is cdist itself (differentiable)."""
    monkeypatch.setattr(gathered, "L1_CHUNK_FLOATS", 16 * 7 * 5)  # 5 candidates a block
    gen = torch.Generator().manual_seed(3)
    q, c = torch.randn(35, 7, generator=gen), torch.randn(23, 7, generator=gen)
    torch.testing.assert_close(l1_all(q, c), torch.cdist(q, c, p=1.0))
    q.requires_grad_(True)
    l1_all(q, c).sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def test_known_values():
    """Hand-computed scores pin the definitions (not only their mutual consistency)."""
    h, r, t = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0]), torch.tensor([3.0, 1.0])
    assert make_interaction("distmult", dim=2).score(h, r, t).item() == pytest.approx(1.5 - 2.0)
    assert make_interaction("transe", dim=2, p_norm=1).score(h, r, t).item() == pytest.approx(-(1.5 + 0.0))
    assert make_interaction("transe", dim=2, p_norm=2).score(h, r, t).item() == pytest.approx(-1.5)
    # ComplEx with d=1: h = 1+2i, r = 0.5-1i, t = 3+1i → Re(h·r·conj(t)) = Re((2.5+0i)(3-1i)) = 7.5
    assert make_interaction("complex", dim=1).score(h, r, t).item() == pytest.approx(7.5)
    # RotatE with d=1, θ = π/2: (1+2i)·i = -2+1i; distance to 3+1i is 5
    rot = make_interaction("rotate", dim=1).score(h, torch.tensor([torch.pi / 2]), t)
    assert rot.item() == pytest.approx(-5.0, abs=1e-6)
    # a margin γ shifts distance scores (γ − d) and leaves bilinear ones alone
    assert make_interaction("transe", dim=2, p_norm=2, margin=4.0).score(h, r, t).item() == pytest.approx(2.5)
    assert make_interaction("distmult", dim=2, margin=4.0).score(h, r, t).item() == pytest.approx(-0.5)


@pytest.mark.parametrize(
    ("sampled", "kernel"),
    [
        (sampled_dot, lambda q, e: (q * e).sum(-1)),
        (sampled_l1, lambda q, e: (q - e).abs().sum(-1)),
    ],
)
def test_sampled_forms_match_gather_with_their_gradients(sampled, kernel):
    gen = torch.Generator().manual_seed(3)
    queries = torch.randn(7, 2, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    table = torch.randn(9, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    index = torch.randint(0, 9, (7, 6), generator=gen)
    side = torch.randint(0, 2, (7, 6), generator=gen)
    chosen = queries.gather(1, side.unsqueeze(-1).expand(7, 6, 5))
    torch.testing.assert_close(sampled(queries, table, index, side), kernel(chosen, table[index]))
    assert torch.autograd.gradcheck(lambda q, w: sampled(q, w, index, side), (queries, table))


def test_registry_lists_the_four_backbones():
    assert {"complex", "distmult", "rotate", "transe"} <= set(components.BACKBONES.names())


@pytest.mark.parametrize("p", [1, 2])
def test_normalised_transe_score_forms_agree(p):
    """With the reference code's normalisation, the 1-vs-all and sampled forms still equal the
    element-wise score, and scaling an entity row or a relation row changes nothing."""
    inter = make_interaction("transe", dim=DIM, p_norm=p, margin=12.0, options=NORMALISED)
    ent, rel = _tables(inter, seed=4)
    h, r, t = torch.tensor([0, 3, 5, 7]), torch.tensor([0, 1, 2, 1]), torch.tensor([1, 2, 9, 10])
    tails = inter.score_tails(ent[h], rel[r], ent)
    heads = inter.score_heads(rel[r], ent[t], ent)
    for b in range(B):
        torch.testing.assert_close(
            tails[b], inter.score(ent[h[b]].expand(N, -1), rel[r[b]].expand(N, -1), ent)
        )
        torch.testing.assert_close(
            heads[b], inter.score(ent, rel[r[b]].expand(N, -1), ent[t[b]].expand(N, -1))
        )
    gen = torch.Generator().manual_seed(5)
    index = torch.randint(0, N, (B, 5), generator=gen)
    corrupt_head = torch.rand(B, 5, generator=gen) < 0.5
    queries = torch.stack([inter.head_query(rel[r], ent[t]), inter.tail_query(ent[h], rel[r])], dim=1)
    got = inter.compare_sampled(queries, ent, index, (~corrupt_head).long())
    expected = inter.score(
        ent[torch.where(corrupt_head, index, h[:, None])],
        rel[r][:, None, :],
        ent[torch.where(corrupt_head, t[:, None], index)],
    )
    torch.testing.assert_close(got, expected)
    scaled = inter.score(3.0 * ent[h], 0.5 * rel[r], 7.0 * ent[t])
    torch.testing.assert_close(scaled, inter.score(ent[h], rel[r], ent[t]))
    # by hand: unit vectors h = (1, 0), r = (0, 1), t = (0, 1) → ‖h + r − t‖₁ = 1, γ − 1 = 11
    two = make_interaction("transe", dim=2, p_norm=1, margin=12.0, options=NORMALISED)
    one = two.score(torch.tensor([5.0, 0.0]), torch.tensor([0.0, 2.0]), torch.tensor([0.0, 3.0]))
    assert one.item() == pytest.approx(11.0)


def test_normalisation_is_in_the_forward_pass():
    """The gradient flows through the normalisation (not a projection after the step): it is
    orthogonal to the entity row it reaches, so a step does not change the row's scale to first
    order, and the plain TransE's gradient is not."""
    inter = make_interaction("transe", dim=DIM, p_norm=2, options=NORMALISED)
    ent, rel = _tables(inter, seed=6)
    h = ent[0].clone().requires_grad_(True)
    inter.score(h, rel[0], ent[1]).backward()
    assert h.grad.abs().sum() > 0
    assert torch.dot(h.grad, h.detach()).abs() < 1e-10
    plain = make_interaction("transe", dim=DIM, p_norm=2)
    h2 = ent[0].clone().requires_grad_(True)
    plain.score(h2, rel[0], ent[1]).backward()
    assert torch.dot(h2.grad, h2.detach()).abs() > 1e-6


def test_transe_options_are_checked():
    from vlkge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"normalize_entities"):
        make_interaction("transe", dim=2, options={"normalize_entities": "yes"})
    with pytest.raises(ConfigError, match=r"no option 'normalise'"):
        make_interaction("transe", dim=2, options={"normalise": True})

"""The three score forms of every backbone agree; the sampled form has the right gradients."""

from __future__ import annotations

import pytest
import torch

from vlkge import components
from vlkge.gathered import sampled_dot
from vlkge.interactions import make_interaction

BACKBONES = [("transe", 1), ("transe", 2), ("distmult", 2), ("complex", 2), ("rotate", 2)]
DIM, N, B = 6, 11, 4


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


def test_sampled_dot_gradients_match_gather():
    gen = torch.Generator().manual_seed(3)
    queries = torch.randn(7, 2, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    table = torch.randn(9, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    index = torch.randint(0, 9, (7, 6), generator=gen)
    side = torch.randint(0, 2, (7, 6), generator=gen)
    assert torch.autograd.gradcheck(lambda q, w: sampled_dot(q, w, index, side), (queries, table))


def test_registry_lists_the_four_backbones():
    assert {"complex", "distmult", "rotate", "transe"} <= set(components.BACKBONES.names())

"""Keyed sums: a sorted-key search behind a membership filter gives what a dictionary gives."""

from __future__ import annotations

import pytest
import torch

from vlkge import csr
from vlkge.csr import KeyedSums


def _reference(keys: torch.Tensor, weights: torch.Tensor) -> dict[int, float]:
    sums: dict[int, float] = {}
    for key, weight in zip(keys.tolist(), weights.tolist(), strict=True):
        sums[key] = sums.get(key, 0.0) + weight
    return sums


@pytest.mark.parametrize("slots", [1, 4, 16])
def test_lookups_equal_a_dictionarys_at_any_filter_size(monkeypatch, slots):
    monkeypatch.setattr(csr, "FILTER_SLOTS_PER_KEY", slots)
    gen = torch.Generator().manual_seed(slots)
    keys = torch.randint(0, 2**40, (3000,), generator=gen)
    keys = torch.cat([keys, keys[:200], torch.tensor([0, 2**62])])  # repeats summed; extremes
    weights = torch.rand(len(keys), generator=gen)
    sums = KeyedSums(keys, weights)
    query = torch.cat([keys[:500], torch.randint(0, 2**40, (5000,), generator=gen)]).view(50, 110)
    reference = _reference(keys, weights)
    expected = torch.tensor([reference.get(k, 0.0) for k in query.reshape(-1).tolist()]).view(50, 110)
    torch.testing.assert_close(sums[query], expected)
    assert torch.equal(sums.holds(query), expected > 0)
    assert len(sums) == len(reference)


@pytest.mark.parametrize("span", [2**28, 2**40])
def test_the_filter_turns_most_absent_queries_away_before_the_search(span):
    """Small keys (a graph of 6,555 entities and 9 relations: < 2²⁹) as well as large ones."""
    gen = torch.Generator().manual_seed(0)
    sums = KeyedSums(torch.randint(0, span, (10_000,), generator=gen))
    absent = torch.randint(0, span, (100_000,), generator=gen)
    absent = absent[~torch.isin(absent, sums.keys)]
    passed = sums._filter[sums._slot(absent)].float().mean()
    assert passed < 0.1  # ≈ 1/16 with 16 slots a key


def test_no_keys_and_the_device_copy():
    empty = KeyedSums(torch.zeros(0, dtype=torch.long))
    query = torch.tensor([[0, 5], [7, 2**50]])
    assert torch.equal(empty[query], torch.zeros(2, 2)) and not empty.holds(query).any()
    ones = KeyedSums(torch.tensor([5, 5, 7]))  # default weight 1
    assert ones[query].tolist() == [[0.0, 2.0], [1.0, 0.0]]
    assert ones.on(torch.device("cpu")) is ones

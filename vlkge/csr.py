"""Integer keys → lists of (value, weight), compressed (CSR), and sums of listed items into dense
rows: the sparse relations text mentions (:mod:`vlkge.features.mentions`) and neighbour votes
(:mod:`vlkge.votes`) read."""

from __future__ import annotations

import torch
from torch import Tensor

from vlkge.positions import positions_among


class Lists:
    """Keys [0, K) → the (value, weight) items given with them, in the order given."""

    def __init__(self, keys: Tensor, values: Tensor, num_keys: int, weights: Tensor | None = None) -> None:
        """``keys``, ``values`` [P] (int), ``weights`` [P] (default 1)."""
        order = torch.argsort(keys, stable=True)
        self.offsets = torch.zeros(num_keys + 1, dtype=torch.long)
        self.offsets[1:] = torch.bincount(keys, minlength=num_keys).cumsum(0)
        self.values = values[order]
        self.weights = torch.ones(len(values)) if weights is None else weights[order]

    def at(self, key: int) -> Tensor:
        """The values listed under one key."""
        return self.values[self.offsets[key] : self.offsets[key + 1]]

    def expand(self, keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """keys [M] → (position in ``keys`` [L], value [L], weight [L]) of every listed item."""
        start = self.offsets[keys]
        count = self.offsets[keys + 1] - start
        owner = torch.repeat_interleave(torch.arange(len(keys)), count)
        first = torch.cumsum(count, 0) - count
        at = start[owner] + torch.arange(int(count.sum())) - first[owner]
        return owner, self.values[at], self.weights[at]


class KeyedSums:
    """A sparse vector over int64 keys: the weights given with each key, summed; looked up by key."""

    def __init__(self, keys: Tensor, weights: Tensor) -> None:
        """``keys`` [P] (int64, any order, repeats summed), ``weights`` [P]."""
        self.keys, inverse = torch.unique(keys, return_inverse=True)  # sorted
        self.sums = torch.zeros(len(self.keys)).index_add_(0, inverse, weights.float())

    def __getitem__(self, query: Tensor) -> Tensor:
        """query keys [*] → their sums [*] (0 for a key never given)."""
        if len(self.keys) == 0:
            return torch.zeros(query.shape)
        at = torch.searchsorted(self.keys, query.reshape(-1)).clamp_max(len(self.keys) - 1)
        found = self.keys[at] == query.reshape(-1)
        return torch.where(found, self.sums[at], 0.0).reshape(query.shape)


def scatter_rows(
    rows: Tensor, columns: Tensor, weights: Tensor, b: int, n: int, among: Tensor | None = None
) -> Tensor:
    """Σ of ``weights`` [L] at (row, column) into [b, n] (into the columns ``among`` [P] only, in
    that order: [b, P])."""
    width = n
    if among is not None:
        columns = positions_among(among.long().cpu(), n)[columns]
        kept = columns >= 0
        rows, columns, weights, width = rows[kept], columns[kept], weights[kept], len(among)
    out = torch.zeros(b, width)
    out.index_put_((rows, columns), weights, accumulate=True)
    return out

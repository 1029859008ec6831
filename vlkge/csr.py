"""Integer keys → lists of (value, weight), compressed (CSR), and sums of listed items into dense
rows: the sparse relations text mentions (:mod:`vlkge.features.mentions`) and neighbour votes
(:mod:`vlkge.votes`) read."""

from __future__ import annotations

import copy

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


#: slots of a :class:`KeyedSums`' membership filter per stored key (rounded up to a power of
#: two): a query whose slot no key fills is absent without a search (≈ 1/16 of absent queries
#: reach the search; a training step's sampled pairs are nearly all absent)
FILTER_SLOTS_PER_KEY = 16
#: the filter's largest size in slots (one byte each); beyond it more absent queries are searched
FILTER_MAX_SLOTS = 1 << 26
#: ⌊2³² / φ⌋: multiplicative (Fibonacci) hashing of 31-bit folds of the keys, modulo 2³² (the
#: product of a fold and this fits in 63 bits: no int64 overflow)
_FIBONACCI = 2654435769
_LOW_32 = 0xFFFFFFFF


class KeyedSums:
    """A sparse vector over int64 keys: the weights given with each key, summed; looked up by key
    (a sorted-key search behind a membership filter)."""

    def __init__(self, keys: Tensor, weights: Tensor | None = None) -> None:
        """``keys`` [P] (int64 ≥ 0, any order, repeats summed), ``weights`` [P] (default 1)."""
        self.keys, inverse = torch.unique(keys.long(), return_inverse=True)  # sorted
        weights = torch.ones(len(keys), device=keys.device) if weights is None else weights.float()
        self.sums = torch.zeros(len(self.keys), device=keys.device).index_add_(0, inverse, weights)
        wanted = max(1, len(self.keys) * FILTER_SLOTS_PER_KEY)
        self._bits = min(wanted - 1, FILTER_MAX_SLOTS - 1).bit_length()
        self._filter = torch.zeros(1 << self._bits, dtype=torch.bool, device=keys.device)
        self._filter[self._slot(self.keys)] = True
        self._moved: dict[torch.device, KeyedSums] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def _slot(self, keys: Tensor) -> Tensor:
        """The filter slot of each key [*]: the top bits of (31-bit fold × ⌊2³²/φ⌋) mod 2³². Taking
        them from the whole product instead would leave small keys (< 2³¹: WN9-IMG's triples)
        in the lowest eighth of the slots, and pass 40 % of absent queries, not 5 %."""
        folded = (keys ^ (keys >> 31)) & 0x7FFFFFFF
        return ((folded * _FIBONACCI) & _LOW_32) >> (32 - self._bits)

    def on(self, device: torch.device) -> KeyedSums:
        """This vector on ``device`` (a copy kept for later calls)."""
        if device == self.keys.device:
            return self
        if device not in self._moved:
            moved = copy.copy(self)
            moved.keys, moved.sums = self.keys.to(device), self.sums.to(device)
            moved._filter = self._filter.to(device)
            moved._moved = {}
            self._moved[device] = moved
        return self._moved[device]

    def _find(self, query: Tensor) -> tuple[Tensor, Tensor]:
        """Flat query keys [Q] → (the queries found [F], their positions in ``keys`` [F])."""
        maybe = self._filter.index_select(0, self._slot(query)).nonzero().squeeze(1)
        wanted = query[maybe]
        at = torch.searchsorted(self.keys, wanted).clamp_max(len(self.keys) - 1)
        found = self.keys[at] == wanted
        return maybe[found], at[found]

    def __getitem__(self, query: Tensor) -> Tensor:
        """query keys [*] → their sums [*] (0 for a key never given)."""
        flat = query.reshape(-1).long()
        out = torch.zeros(flat.shape, device=flat.device)
        if len(self.keys):
            where, at = self._find(flat)
            out[where] = self.sums[at]
        return out.reshape(query.shape)

    def holds(self, query: Tensor) -> Tensor:
        """query keys [*] → bool [*]: whether each was given."""
        flat = query.reshape(-1).long()
        out = torch.zeros(flat.shape, dtype=torch.bool, device=flat.device)
        if len(self.keys):
            out[self._find(flat)[0]] = True
        return out.reshape(query.shape)


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

"""Negative sampling for sLCWA training, vectorised over a batch.

Each positive (h, r, t) gets K corruptions; each corruption replaces the head (with probability
p_r) or the tail by a uniformly drawn different entity from the candidates (the trainer passes the
entities of the train split: in an inductive graph the held-out entities are never negatives, so
no test entity reaches training). ``uniform``: p_r = 1/2. ``bernoulli``
(Wang et al., 2014): p_r = tph_r / (tph_r + hpt_r), so the side with more answers is corrupted
less often. ``filtered`` marks corruptions that are true training triples so the loss skips them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vlkge.components import SAMPLERS
from vlkge.csr import KeyedSums


def triple_keys(triples: Tensor, num_entities: int, num_relations: int) -> Tensor:
    """Unique int64 key per (h, r, t): [..., 3] → [...]."""
    h, r, t = triples[..., 0], triples[..., 1], triples[..., 2]
    return (h * num_relations + r) * num_entities + t


def uniform_head_probability(train: Tensor, num_relations: int) -> Tensor:
    """``uniform``: the head or the tail with probability 1/2 each: [R]."""
    return torch.full((num_relations,), 0.5)


def bernoulli_head_probability(train: Tensor, num_relations: int) -> Tensor:
    """``bernoulli``: per relation, tph / (tph + hpt) (tails per head, heads per tail): [R]."""
    h, r, t = train[:, 0], train[:, 1], train[:, 2]
    probability = torch.full((num_relations,), 0.5)
    for rel in torch.unique(r).tolist():  # one pass per relation, not per triple
        sel = r == rel
        heads, tails = h[sel], t[sel]
        tph = sel.sum() / torch.unique(heads).numel()  # tails per head
        hpt = sel.sum() / torch.unique(tails).numel()  # heads per tail
        probability[rel] = tph / (tph + hpt)
    return probability


def head_corruption_probability(train: Tensor, num_relations: int, mode: str) -> Tensor:
    """Per-relation probability of corrupting the head [R] under the sampler ``mode``
    (``train.sampler``, :data:`vlkge.components.SAMPLERS`)."""
    return SAMPLERS.get(mode)(train, num_relations)


class NegativeSampler:
    """Draws K corruptions per positive.

    ``sample(batch [B, 3])`` → ``(negatives [B, K, 3], corrupt_head [B, K], keep [B, K])``
    (the last two bool);
    ``keep`` is False for filtered corruptions (true training triples) when ``filtered``.
    ``candidates`` [M] (entity ids; default all): the entities negatives are drawn from; they must
    include every entity of ``train``.
    """

    def __init__(
        self,
        train: Tensor,
        num_entities: int,
        num_relations: int,
        negatives: int,
        mode: str = "uniform",
        filtered: bool = False,
        generator: torch.Generator | None = None,
        candidates: Tensor | None = None,
    ) -> None:
        self.num_entities = num_entities
        self.candidates = None  # None: every entity
        if candidates is not None and len(unique := torch.unique(candidates)) < num_entities:
            self.candidates = unique  # sorted
            if not bool(torch.isin(train[:, [0, 2]], self.candidates).all()):
                raise ValueError("the negative candidates must include every entity of the train triples")
        if self.num_candidates < 2:
            raise ValueError("negative sampling needs at least 2 candidate entities")
        self.num_relations = num_relations
        self.negatives = negatives
        self.generator = generator
        self.p_head = head_corruption_probability(train, num_relations, mode)
        self.filtered = filtered
        self.known = KeyedSums(triple_keys(train, num_entities, num_relations)) if filtered else None

    @property
    def num_candidates(self) -> int:
        return len(self.candidates) if self.candidates is not None else self.num_entities

    def sample(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, k = batch.shape[0], self.negatives
        gen = self.generator
        corrupt_head = torch.rand(b, k, generator=gen) < self.p_head[batch[:, 1]].unsqueeze(1)
        replaced = torch.where(corrupt_head, batch[:, 0:1], batch[:, 2:3])
        # draw from M-1 candidates and skip the one being replaced: never the positive itself
        draw = torch.randint(0, self.num_candidates - 1, (b, k), generator=gen)
        if self.candidates is None:
            draw = draw + (draw >= replaced).long()
        else:
            at = torch.searchsorted(self.candidates, replaced)  # the replaced entity's position
            draw = self.candidates[draw + (draw >= at).long()]
        negatives = batch.unsqueeze(1).expand(b, k, 3).clone()
        negatives[..., 0] = torch.where(corrupt_head, draw, negatives[..., 0])
        negatives[..., 2] = torch.where(corrupt_head, negatives[..., 2], draw)
        keep = torch.ones(b, k, dtype=torch.bool)
        if self.known is not None:
            keep = ~self.known.holds(triple_keys(negatives, self.num_entities, self.num_relations))
        return negatives, corrupt_head, keep

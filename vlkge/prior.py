"""The feature prior of multimodal models: what an entity's features say about a triple by
themselves, added to the backbone's score.

    score(h, r, t) = backbone(e_h, r, e_t) + w_r · sim(h, t) + [h or t without structure] · τ_r(h, t)
    τ_r(h, t) = τᴴ_r(h) + τᵀ_r(t)

- ``sim(h, t)``: the feature similarity of the two entities (mean cosine over the modalities both
  have, 0 for an entity with itself: :meth:`EntityRepresentation.similarity`), weighed per relation
  by ``w`` [R] (starts at ``model.similarity``): untrained, the model ranks like a nearest-neighbour
  lookup over the features;
- ``τˢ_r(e) = ⟨ρˢ_r, x̂_e⟩ + βˢ_r·[e has no structure]`` (``model.typing``): which entities fit side
  s ∈ {head, tail} of relation r, read from their normalised features x̂ [D] (all modalities side
  by side), plus a learned offset for entities without structure (unseen in train, or
  structure-dropped in a training batch) that calibrates them against entities with structure.
  Typing **stands in for structure**: it scores a pair only when one of its entities has no
  structural row (for two entities with structure, the backbone already knows their types).

The **features-only view** of a triple, w_r · sim(h, t) + ⟨ρᴴ_r, x̂_h⟩ + ⟨ρᵀ_r, x̂_t⟩, is what the
model says of it from features alone; ``train.prior_loss`` trains it on every training triple, so
the typing is learnt from the whole graph although it only ever scores pairs with a structureless
entity.

Both terms have no per-entity parameters, so they carry over to entities never seen in training as
they are. The parameters (``w`` [R], ``ρ`` [2, R, D], ``β`` [2, R]) train at ``train.prior_lr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vlkge.gathered import sampled_dot
from vlkge.representations.base import BatchRows, EntityRepresentation

HEAD, TAIL = 0, 1


class FeaturePrior(nn.Module):
    """The prior terms for ``num_relations`` relations over features of total width ``width``."""

    def __init__(self, num_relations: int, width: int, similarity: float, typing: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_relations,), float(similarity)))
        self.typing = nn.Parameter(torch.zeros(2, num_relations, width)) if typing else None
        self.unstructured = nn.Parameter(torch.zeros(2, num_relations)) if typing else None

    def _type(self, side: int, r: Tensor, unit: Tensor, structured: Tensor | None) -> Tensor:
        """τ of entities with normalised features ``unit`` [*, D] on ``side`` of relations r [*]
        → [*]; ``structured`` [*] bool adds the offset of those without structure (None: none)."""
        if self.typing is None:
            return unit.new_zeros(unit.shape[:-1])
        fit = (self.typing[side, r] * unit).sum(-1)
        if structured is None:
            return fit
        return fit + self.unstructured[side, r] * (~structured).to(unit.dtype)

    def pairs(self, reps: EntityRepresentation, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Global ids h, r, t [*] → the prior of each triple [*]."""
        out = self.weight[r] * reps.similarity(h, t)
        if self.typing is None:
            return out
        structured = reps.structured()
        head = self._type(HEAD, r, reps.unit_features(h), structured[h])
        tail = self._type(TAIL, r, reps.unit_features(t), structured[t])
        loose = ~(structured[h] & structured[t])
        return out + (head + tail) * loose.to(out.dtype)

    def to_all(self, reps: EntityRepresentation, anchor: Tensor, r: Tensor, side: int) -> Tensor:
        """Queries about ``anchor`` [B] under ``r`` [B] whose candidates fill ``side`` → [B, N]."""
        out = self.weight[r].unsqueeze(1) * reps.similarity_to_all(anchor)
        if self.typing is None:
            return out
        structured = reps.structured()
        unit = reps.unit_features(torch.arange(reps.num_entities, device=anchor.device))
        loose = (~structured).to(unit.dtype)
        candidates = self.typing[side, r] @ unit.T + self.unstructured[side, r].unsqueeze(1) * loose
        given = self._type(1 - side, r, reps.unit_features(anchor), structured[anchor])
        pair_loose = torch.maximum(loose[anchor].unsqueeze(1), loose.unsqueeze(0))  # [B, N]
        return out + (candidates + given.unsqueeze(1)) * pair_loose

    def in_batch(self, reps: EntityRepresentation, rows: BatchRows, corrupt_head: Tensor) -> BatchPrior:
        """A training batch's priors from its own rows (:class:`BatchPrior`)."""
        positive, negative = reps.similarity_in_batch(rows, corrupt_head)
        r = rows.batch[:, 1]
        positive = self.weight[r] * positive
        negative = self.weight[r].unsqueeze(1) * negative
        if self.typing is None:
            return BatchPrior(positive, negative, positive, negative)
        ids = rows.global_ids(torch.arange(len(rows.ids), device=r.device))
        unit, structured = reps.unit_features(ids), rows.structured
        h, t = rows.batch[:, 0], rows.batch[:, 2]
        head, tail = self._type(HEAD, r, unit[h], None), self._type(TAIL, r, unit[t], None)
        # the replaced entity's fit on its side: ⟨ρ_side, x̂⟩ without a [B, K, D] gather
        queries = torch.stack([self.typing[HEAD, r], self.typing[TAIL, r]], dim=1)  # [B, 2, D]
        side = (~corrupt_head).long()
        replaced = sampled_dot(queries, unit, rows.replacement, side)
        kept = torch.where(corrupt_head, tail.unsqueeze(1), head.unsqueeze(1))
        alone = BatchPrior(positive, negative, positive + head + tail, negative + kept + replaced)
        # with structure: typing (and its offsets) only where a pair has a structureless entity
        offset = self.unstructured[:, r]  # [2, B]
        free = (~structured).to(unit.dtype)
        positive_typed = head + tail + offset[HEAD] * free[h] + offset[TAIL] * free[t]
        kept_free = torch.where(corrupt_head, free[t].unsqueeze(1), free[h].unsqueeze(1))
        kept_offset = torch.where(corrupt_head, offset[TAIL].unsqueeze(1), offset[HEAD].unsqueeze(1))
        replaced_offset = offset.T.gather(1, side)  # [B, K]: β of the replaced side
        negative_typed = kept + kept_offset * kept_free + replaced + replaced_offset * free[rows.replacement]
        positive_loose = ~(structured[h] & structured[t])
        negative_loose = (kept_free > 0) | ~structured[rows.replacement]
        return BatchPrior(
            positive + positive_typed * positive_loose.to(unit.dtype),
            negative + negative_typed * negative_loose.to(unit.dtype),
            alone.alone_positive,
            alone.alone_negative,
        )


@dataclass(frozen=True)
class BatchPrior:
    """A training batch's prior: as it adds to the backbone's score (``positive`` [B],
    ``negative`` [B, K]) and the features-only view of the same triples (``alone_*``)."""

    positive: Tensor
    negative: Tensor
    alone_positive: Tensor
    alone_negative: Tensor

"""The feature prior of multimodal models: what an entity's features say about a triple by
themselves, added to the backbone's score.

    score(h, r, t) = backbone(e_h, r, e_t) + w_r · sim(h, t) + τᴴ_r(h) + τᵀ_r(t)

- ``sim(h, t)``: the feature similarity of the two entities (mean cosine over the modalities both
  have, 0 for an entity with itself: :meth:`EntityRepresentation.similarity`), weighed per relation
  by ``w`` [R] (starts at ``model.similarity``): untrained, the model ranks like a nearest-neighbour
  lookup over the features;
- ``τˢ_r(e) = ⟨ρˢ_r, x̂_e⟩ + βˢ_r·[e has no structure]`` (``model.typing``): which entities fit side
  s ∈ {head, tail} of relation r, read from their normalised features x̂ [D] (all modalities side
  by side), plus a learned offset for entities without structure (unseen in train, or
  structure-dropped in a training batch) that calibrates them against entities with structure.

Both terms have no per-entity parameters, so they carry over to entities never seen in training as
they are. The parameters (``w`` [R], ``ρ`` [2, R, D], ``β`` [2, R]) train at ``train.prior_lr``.
"""

from __future__ import annotations

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

    def _type(self, side: int, r: Tensor, unit: Tensor, structured: Tensor) -> Tensor:
        """τ of entities with normalised features ``unit`` [*, D] and structure flags [*] on
        ``side`` of relations r [*] → [*]."""
        if self.typing is None:
            return unit.new_zeros(unit.shape[:-1])
        offset = self.unstructured[side, r] * (~structured).to(unit.dtype)
        return (self.typing[side, r] * unit).sum(-1) + offset

    def pairs(self, reps: EntityRepresentation, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Global ids h, r, t [*] → the prior of each triple [*]."""
        out = self.weight[r] * reps.similarity(h, t)
        structured = reps.structured()
        head = self._type(HEAD, r, reps.unit_features(h), structured[h])
        return out + head + self._type(TAIL, r, reps.unit_features(t), structured[t])

    def to_all(self, reps: EntityRepresentation, anchor: Tensor, r: Tensor, side: int) -> Tensor:
        """Queries about ``anchor`` [B] under ``r`` [B] whose candidates fill ``side`` → [B, N]."""
        out = self.weight[r].unsqueeze(1) * reps.similarity_to_all(anchor)
        if self.typing is None:
            return out
        structured = reps.structured()
        unit = reps.unit_features(torch.arange(reps.num_entities, device=anchor.device))
        candidates = self.typing[side, r] @ unit.T + self.unstructured[side, r].unsqueeze(1) * (
            ~structured
        ).to(unit.dtype).unsqueeze(0)
        given = self._type(1 - side, r, reps.unit_features(anchor), structured[anchor])
        return out + candidates + given.unsqueeze(1)

    def in_batch(
        self, reps: EntityRepresentation, rows: BatchRows, corrupt_head: Tensor
    ) -> tuple[Tensor, Tensor]:
        """A training batch's priors from its own rows: (positives [B], corruptions [B, K])."""
        positive, negative = reps.similarity_in_batch(rows, corrupt_head)
        r = rows.batch[:, 1]
        positive = self.weight[r] * positive
        negative = self.weight[r].unsqueeze(1) * negative
        if self.typing is None:
            return positive, negative
        ids = rows.global_ids(torch.arange(len(rows.ids), device=r.device))
        unit, structured = reps.unit_features(ids), rows.structured
        h, t = rows.batch[:, 0], rows.batch[:, 2]
        head = self._type(HEAD, r, unit[h], structured[h])
        tail = self._type(TAIL, r, unit[t], structured[t])
        # the replaced entity's τ on its side: ⟨ρ_side, x̂⟩ without a [B, K, D] gather
        queries = torch.stack([self.typing[HEAD, r], self.typing[TAIL, r]], dim=1)  # [B, 2, D]
        side = (~corrupt_head).long()
        offsets = self.unstructured[:, r].T.gather(1, side)  # [B, K]: β of the replaced side
        replaced = sampled_dot(queries, unit, rows.replacement, side)
        replaced = replaced + offsets * (~structured[rows.replacement]).to(unit.dtype)
        kept = torch.where(corrupt_head, tail.unsqueeze(1), head.unsqueeze(1))
        return positive + head + tail, negative + kept + replaced

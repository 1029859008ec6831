"""A training batch's sampled corruptions scored without computing their fused rows.

Under a fusion that weighs its parts by the modality mask only (average, weighted, concat — whose
block B_m of its map each part meets first, so that q below becomes B_mᵀq for part m:
:class:`vlkge.fusion.base.MaskWeightedFusion`) the fused row of entity e is
e = Σ_m w_m(e)·part_m(e), with part_m = W_m·x_m(e) + b_m for a feature modality (x_m frozen) and
the structural row s(e). A backbone that scores a candidate by a dot product with a query q
(DistMult) then scores it as

    ⟨q, e⟩ = w_s(e)·⟨q, s(e)⟩ + Σ_m w_m(e)·(⟨W_mᵀq, x_m(e)⟩ + ⟨q, b_m⟩).

Each step multiplies the B·S queries by each W_m ([B·S, d]·[d, d_m]) instead of projecting the
features of every entity the negatives touch ([U, d_m]·[d_m, d] with U ≈ all entities at 100
negatives), and reads s and x_m in place with the sampled kernel; a modality fewer of those
entities have than there are queries (images of a few entities) is projected for them instead.
The gradients are those of scoring the fused rows (tests/test_linear_negatives.py).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from vlkge.fusion.base import MaskWeightedFusion
from vlkge.gathered import dot_of_chosen_pairs, rows_at, sampled_dot
from vlkge.modalities import STRUCTURAL
from vlkge.positions import positions_among
from vlkge.representations.structural import StructuralEmbedding


class Parts(Protocol):
    """What the scorer reads of a multimodal representation (:class:`MultimodalRepresentation`)."""

    modalities: tuple[str, ...]
    structure: StructuralEmbedding | None
    projections: nn.ModuleDict
    mask: Tensor
    fusion: MaskWeightedFusion

    def feature_table(self, modality: str) -> Tensor: ...

    def dot_sampled(
        self, modality: str, table: Tensor, queries: Tensor, index: Tensor, side: Tensor
    ) -> Tensor: ...


#: a modality is projected for the step's entities that have it when they are fewer than this
#: many per query (else the queries are taken to its space): the smaller product
ROWS_PER_QUERY = 1.0


def to_feature_space(queries: Tensor, projection: nn.Linear) -> Tensor:
    """queries [B, S, d] → W_mᵀq [B, S, d_m] for the projection W_m [d, d_m] of a modality."""
    return queries @ projection.weight


class LinearNegatives:
    """(queries [B, S, d], replacement [B, K] positions in ``ids``, side [B, K]) → [B, K]:
    ⟨queries[b, side[b, k]], fused row of ids[replacement[b, k]]⟩, for entities whose part
    weights this step are ``weights`` [U, M] (the fusion's, after structure dropout)."""

    def __init__(self, reps: Parts, ids: Tensor, weights: Tensor) -> None:
        self.reps, self.ids, self.weights = reps, ids, weights

    def __call__(self, queries: Tensor, replacement: Tensor, side: Tensor) -> Tensor:
        reps = self.reps
        entities = rows_at(self.ids, replacement)  # [B, K] global ids
        weights = rows_at(self.weights, replacement)  # [B, K, M]
        out = torch.zeros(replacement.shape, dtype=queries.dtype, device=queries.device)
        for i, m in enumerate(reps.modalities):
            # ⟨q, B_m · part⟩ = ⟨B_mᵀq, part⟩ for a fusion that maps its parts (concat)
            block = reps.fusion.part_map(i)
            meets = queries if block is None else queries @ block
            if m == STRUCTURAL:
                structure = reps.structure
                dots = sampled_dot(meets, structure.weight, entities, side, structure.sparse)
            else:
                dots = self._feature_dots(m, i, meets, replacement, entities, side)
            out = torch.addcmul(out, weights[..., i], dots)
        return out

    def _feature_dots(
        self, modality: str, column: int, queries: Tensor, replacement: Tensor, entities: Tensor, side: Tensor
    ) -> Tensor:
        """⟨q, W_m x_m(e) + b_m⟩ [B, K] (0 where e lacks the modality; ``entities`` [B, K] the
        global ids of ``replacement``): the queries taken to the features' space, or, when fewer
        of the step's entities have the modality than there are queries (images of a few
        entities), those entities' features projected and the pairs that have it gathered."""
        reps, projection = self.reps, self.reps.projections[modality]
        have = reps.mask[self.ids, column]  # [U]
        if int(have.sum()) >= ROWS_PER_QUERY * queries.shape[0] * queries.shape[1]:
            table = reps.feature_table(modality)
            dots = reps.dot_sampled(modality, table, to_feature_space(queries, projection), entities, side)
            if projection.bias is not None:
                dots = dots + (queries @ projection.bias).gather(1, side)
            return dots
        holders = have.nonzero().squeeze(1)  # positions in ids
        projected = projection(reps.feature_table(modality)[self.ids[holders]])  # [U_m, d]
        slot = rows_at(positions_among(holders, len(have)), replacement)  # [B, K]: row in projected, or -1
        return dot_of_chosen_pairs(queries, projected, slot, side, slot >= 0)

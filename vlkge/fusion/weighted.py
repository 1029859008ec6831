"""Weighted fusion: learned modality weights, a softmax renormalised over the present ones."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlkge.fusion.base import MaskWeightedFusion


class WeightedFusion(MaskWeightedFusion):
    """One learned logit per modality; parts M × [B, d], mask [B, M] → Σ w_m · part_m [B, d]."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_modalities))

    def weights(self, mask: Tensor) -> Tensor:
        """mask [B, M] → weights [B, M], summing to 1 over present modalities (0 when none)."""
        logits = self.logits.expand(mask.shape).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        return torch.nan_to_num(weights, nan=0.0)  # rows with no modality: all -inf → 0

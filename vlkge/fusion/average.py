"""Average fusion: the mean over the modalities an entity has."""

from __future__ import annotations

from torch import Tensor

from vlkge.fusion.base import MaskWeightedFusion


class AverageFusion(MaskWeightedFusion):
    """parts M × [B, d], mask [B, M] → the mean of the present parts [B, d]."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()

    def weights(self, mask: Tensor) -> Tensor:
        """mask [B, M] → 1 / (number present) on the present modalities, 0 elsewhere."""
        weight = mask.float()
        return weight / weight.sum(1, keepdim=True).clamp_min(1.0)

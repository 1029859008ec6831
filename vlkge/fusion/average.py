"""Average fusion: the mean over the modalities an entity has."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from vlkge.fusion.base import weighted_sum


class AverageFusion(nn.Module):
    """parts M × [B, d], mask [B, M] → the mean of the present parts [B, d]."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()

    def forward(self, parts: Sequence[Tensor], mask: Tensor) -> Tensor:
        weight = mask.to(parts[0].dtype)
        return weighted_sum(parts, weight / weight.sum(1, keepdim=True).clamp_min(1.0))

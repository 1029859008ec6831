"""Average fusion: the mean over the modalities an entity has."""

from __future__ import annotations

from torch import Tensor, nn


class AverageFusion(nn.Module):
    """parts [B, M, d], mask [B, M] → the mean of the present parts [B, d]."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()

    def forward(self, parts: Tensor, mask: Tensor) -> Tensor:
        weight = mask.to(parts.dtype).unsqueeze(-1)  # [B, M, 1]
        return (parts * weight).sum(1) / weight.sum(1).clamp_min(1.0)

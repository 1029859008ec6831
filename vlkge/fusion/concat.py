"""Concatenation fusion: the parts side by side, mapped back to d by a learned linear map."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConcatFusion(nn.Module):
    """parts [B, M, d] (absent modalities zeroed) → [B, M·d] → [B, d], so that every backbone sees
    the same width. Starts as the sum of the parts (scaled by 1/√M)."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()
        self.out = nn.Linear(num_modalities * dim, dim, bias=False)
        with torch.no_grad():
            self.out.weight.copy_(torch.eye(dim).repeat(1, num_modalities) / max(1, num_modalities) ** 0.5)

    def forward(self, parts: Tensor, mask: Tensor) -> Tensor:
        zeroed = parts * mask.to(parts.dtype).unsqueeze(-1)
        return self.out(zeroed.flatten(1))

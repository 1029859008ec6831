"""Concatenation fusion: the parts side by side, mapped back to d by a learned linear map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ConcatFusion(nn.Module):
    """parts M × [B, d] (absent modalities zeroed) → [B, M·d] → [B, d], so that every backbone sees
    the same width. Starts as the sum of the parts (scaled by 1/√M)."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()
        self.out = nn.Linear(num_modalities * dim, dim, bias=False)
        with torch.no_grad():
            self.out.weight.copy_(torch.eye(dim).repeat(1, num_modalities) / max(1, num_modalities) ** 0.5)

    def forward(self, parts: Sequence[Tensor], mask: Tensor) -> Tensor:
        # W [d, M·d] applied block by block: Σ_m W_m · (mask_m · part_m), no [B, M·d] concatenation
        blocks = self.out.weight.split(parts[0].shape[1], dim=1)
        weight = mask.to(parts[0].dtype)
        out = (parts[0] * weight[:, :1]) @ blocks[0].T
        for m in range(1, len(parts)):
            out = torch.addmm(out, parts[m] * weight[:, m : m + 1], blocks[m].T)
        return out

"""Concatenation fusion: the parts side by side, mapped back to d by a learned linear map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vlkge.fusion.base import MaskWeightedFusion


class ConcatFusion(MaskWeightedFusion):
    """parts M × [B, d] (absent modalities zeroed) → [B, M·d] → [B, d], so that every backbone sees
    the same width. Starts as the sum of the parts (scaled by 1/√M). As W = [B_1 … B_M] acts block
    by block, fused = Σ_m mask_m · B_m · part_m: mask-weighted, with part maps B_m."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()
        self.out = nn.Linear(num_modalities * dim, dim, bias=False)
        with torch.no_grad():
            self.out.weight.copy_(torch.eye(dim).repeat(1, num_modalities) / max(1, num_modalities) ** 0.5)

    def weights(self, mask: Tensor) -> Tensor:
        """mask [B, M] → 1 on the present modalities, 0 elsewhere."""
        return mask.float()

    def part_map(self, m: int) -> Tensor:
        """B_m [d, d]: the block of W that part m meets."""
        return self.out.weight.split(self.out.weight.shape[0], dim=1)[m]

    def forward(self, parts: Sequence[Tensor], mask: Tensor) -> Tensor:
        # W [d, M·d] applied block by block: Σ_m W_m · (mask_m · part_m), no [B, M·d] concatenation
        weight = self.weights(mask).to(parts[0].dtype)
        out = (parts[0] * weight[:, :1]) @ self.part_map(0).T
        for m in range(1, len(parts)):
            out = torch.addmm(out, parts[m] * weight[:, m : m + 1], self.part_map(m).T)
        return out

"""What the fusions share: a weighted sum of the parts, kept as separate tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def weighted_sum(parts: Sequence[Tensor], weights: Tensor) -> Tensor:
    """parts M × [B, d], weights [B, M] → Σ_m weights[:, m] · parts[m], [B, d].

    One fused multiply-add per part: no [B, M, d] stack (at WN9-IMG size a 60 MB temporary per
    training step, which the allocator maps fresh each time)."""
    out = parts[0] * weights[:, :1]
    for m in range(1, len(parts)):
        out = torch.addcmul(out, parts[m], weights[:, m : m + 1])
    return out


class MaskWeightedFusion(nn.Module):
    """A fusion whose weights depend on the modality mask only (and learned constants), not on
    the parts: fused = Σ_m weights(mask)[:, m] · B_m · part_m is linear in each part, which lets a
    linear scorer take the parts apart (:mod:`vlkge.representations.linear_negatives`)."""

    def weights(self, mask: Tensor) -> Tensor:
        """mask [B, M] bool → weights [B, M]."""
        raise NotImplementedError

    def part_map(self, m: int) -> Tensor | None:
        """The matrix B_m [d, d] part m passes through before it is weighed (fused = Σ_m
        weights_m · B_m · part_m); None: the identity."""
        return None

    def forward(self, parts: Sequence[Tensor], mask: Tensor) -> Tensor:
        return weighted_sum(parts, self.weights(mask).to(parts[0].dtype))

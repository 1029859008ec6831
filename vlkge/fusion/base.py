"""What the fusions share: a weighted sum of the parts, kept as separate tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def weighted_sum(parts: Sequence[Tensor], weights: Tensor) -> Tensor:
    """parts M × [B, d], weights [B, M] → Σ_m weights[:, m] · parts[m], [B, d].

    One fused multiply-add per part: no [B, M, d] stack (at WN9-IMG size a 60 MB temporary per
    training step, which the allocator maps fresh each time)."""
    out = parts[0] * weights[:, :1]
    for m in range(1, len(parts)):
        out = torch.addcmul(out, parts[m], weights[:, m : m + 1])
    return out

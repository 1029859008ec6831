"""Fusion of per-modality entity representations over a modality mask (GUIDE §3.2).

Every fusion takes ``parts`` [B, M, d] (one d-vector per modality, rows of absent modalities may
hold anything) and ``mask`` [B, M] bool (which modalities the entity has) and returns [B, d].
All are vectorised over the batch: no per-entity Python. An entity with no modality at all gets
the zero vector (callers report and exclude such entities).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlkge.registry import Registry

FUSIONS: Registry[type[nn.Module]] = Registry("fusion")


@FUSIONS.register("average")
class AverageFusion(nn.Module):
    """Mean over the modalities an entity has."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()

    def forward(self, parts: Tensor, mask: Tensor) -> Tensor:
        weight = mask.to(parts.dtype).unsqueeze(-1)  # [B, M, 1]
        return (parts * weight).sum(1) / weight.sum(1).clamp_min(1.0)


@FUSIONS.register("sum")
class SumFusion(nn.Module):
    """Sum over the modalities an entity has: the structural row keeps its full scale (features
    act as a residual on it), while entities without structure are the sum of their features."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()

    def forward(self, parts: Tensor, mask: Tensor) -> Tensor:
        return (parts * mask.to(parts.dtype).unsqueeze(-1)).sum(1)


@FUSIONS.register("weighted")
class WeightedFusion(nn.Module):
    """Learned modality weights, a softmax renormalised over the modalities an entity has."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_modalities))

    def weights(self, mask: Tensor) -> Tensor:
        """mask [B, M] → weights [B, M], summing to 1 over present modalities (0 when none)."""
        logits = self.logits.expand(mask.shape).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        return torch.nan_to_num(weights, nan=0.0)  # rows with no modality: all -inf → 0

    def forward(self, parts: Tensor, mask: Tensor) -> Tensor:
        return (parts * self.weights(mask).unsqueeze(-1)).sum(1)


@FUSIONS.register("concat")
class ConcatFusion(nn.Module):
    """Concatenation [B, M·d] (absent modalities zero) mapped back to d by a learned linear map,
    so that every backbone sees the same width."""

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()
        self.out = nn.Linear(num_modalities * dim, dim, bias=False)
        with torch.no_grad():  # start as the sum of the parts
            self.out.weight.copy_(torch.eye(dim).repeat(1, num_modalities) / max(1, num_modalities) ** 0.5)

    def forward(self, parts: Tensor, mask: Tensor) -> Tensor:
        zeroed = parts * mask.to(parts.dtype).unsqueeze(-1)
        return self.out(zeroed.flatten(1))


def make_fusion(name: str, num_modalities: int, dim: int) -> nn.Module:
    """The fusion registered as ``name`` (``model.fusion``)."""
    return FUSIONS.get(name, key="model.fusion")(num_modalities, dim)

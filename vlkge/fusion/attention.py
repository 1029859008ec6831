"""Attention fusion: per-entity weights over the present modalities, from the parts themselves."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vlkge.errors import ConfigError
from vlkge.fusion.base import weighted_sum


class AttentionFusion(nn.Module):
    """Each part is scored by a small network, s_m = vᵀ tanh(W·part_m) with ``hidden`` units; the
    weights are a softmax of s / ``temperature`` over the modalities the entity has, so that —
    unlike ``weighted`` — they depend on the entity. parts M × [B, d], mask [B, M] → [B, d].

    Options (``model.fusion_options``): ``hidden`` (default 32), ``temperature`` (default 1; larger
    is closer to ``average``).
    """

    def __init__(self, num_modalities: int, dim: int, hidden: int = 32, temperature: float = 1.0) -> None:
        super().__init__()
        if not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(
                f"impossible value {hidden!r}",
                key="model.fusion_options.hidden",
                hint="a positive whole number",
            )
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ConfigError(
                f"impossible value {temperature!r}",
                key="model.fusion_options.temperature",
                hint="a positive number",
            )
        self.temperature = float(temperature)
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))

    def weights(self, parts: Sequence[Tensor], mask: Tensor) -> Tensor:
        """[B, M], summing to 1 over the present modalities (0 for an entity with none)."""
        scores = torch.cat([self.score(part) for part in parts], dim=1)  # [B, M]
        logits = (scores / self.temperature).masked_fill(~mask, float("-inf"))
        return torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)

    def forward(self, parts: Sequence[Tensor], mask: Tensor) -> Tensor:
        return weighted_sum(parts, self.weights(parts, mask))

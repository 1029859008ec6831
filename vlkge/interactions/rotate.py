"""RotatE (Sun et al., 2019): f(h, r, t) = γ − ‖h ∘ e^{iθ_r} − t‖₂ over complex vectors."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vlkge.interactions.base import Interaction, halves


class RotatE(Interaction):
    """Entities [2d] ``[real | imaginary]``; the relation is a phase vector θ [d]. The distance is
    the Euclidean norm of the complex difference, which has an exact matrix-product 1-vs-all form.
    """

    kernel = "l2"
    entity_factor = 2
    relation_factor = 1

    def init_relations(self, weight: Tensor) -> None:
        with torch.no_grad():
            weight.uniform_(-math.pi, math.pi)

    @staticmethod
    def _rotate(x: Tensor, phase: Tensor) -> Tensor:
        xr, xi = halves(x)
        c, s = torch.cos(phase), torch.sin(phase)
        return torch.cat([xr * c - xi * s, xr * s + xi * c], dim=-1)

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        return self._rotate(h, r)

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        return self._rotate(t, -r)  # rotations keep norms: ‖h∘r - t‖ = ‖h - t∘conj(r)‖

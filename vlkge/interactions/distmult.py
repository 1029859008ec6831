"""DistMult (Yang et al., 2015): f(h, r, t) = Σ h ⊙ r ⊙ t."""

from __future__ import annotations

from torch import Tensor

from vlkge.interactions.base import Interaction


class DistMult(Interaction):
    """Entities and relations [d]; symmetric in h and t."""

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        return h * r

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        return r * t

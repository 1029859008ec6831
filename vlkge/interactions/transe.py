"""TransE (Bordes et al., 2013): f(h, r, t) = γ − ‖h + r − t‖_p, p = ``model.p_norm``."""

from __future__ import annotations

from torch import Tensor

from vlkge.interactions.base import Interaction


class TransE(Interaction):
    """Entities and relations [d]; the ``l2`` kernel (p = 2) has a matrix-product 1-vs-all form."""

    def __init__(self, dim: int, p_norm: int = 2, margin: float = 0.0) -> None:
        super().__init__(dim, p_norm, margin)
        self.kernel = "l2" if p_norm == 2 else "l1"

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        return h + r

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        return t - r  # ‖h + r - t‖ = ‖h - (t - r)‖

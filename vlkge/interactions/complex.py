"""ComplEx (Trouillon et al., 2016): f(h, r, t) = Re⟨h, r, conj(t)⟩ over complex vectors."""

from __future__ import annotations

import torch
from torch import Tensor

from vlkge.interactions.base import Interaction, halves


class ComplEx(Interaction):
    """Entities and relations [2d] laid out ``[real | imaginary]``."""

    entity_factor = 2
    relation_factor = 2

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        hr, hi = halves(h)
        rr, ri = halves(r)
        return torch.cat([hr * rr - hi * ri, hr * ri + hi * rr], dim=-1)

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        rr, ri = halves(r)
        tr, ti = halves(t)
        return torch.cat([rr * tr + ri * ti, rr * ti - ri * tr], dim=-1)

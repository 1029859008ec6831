"""TuckER (Balažević et al., 2019): f(h, r, t) = W ×₁ h ×₂ r ×₃ t, a Tucker decomposition of the
binary tensor of triples with one core tensor W [d, d_r, d] shared by every relation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlkge.errors import ConfigError
from vlkge.interactions.base import Interaction


class TuckER(Interaction):
    """Entities [d] and relations [d_r]; the core tensor W [d, d_r, d] is the backbone's own
    parameter, trained with the tables. Both queries are vectors [d] compared by a dot product, so
    the 1-vs-all and sampled forms are matrix products.

    Options (``model.backbone_options``): ``relation_dim`` d_r (default: d); ``core_init``: W
    starts uniform in ±``core_init`` (default 1, as in the authors' code).
    """

    def __init__(
        self,
        dim: int,
        p_norm: int = 2,
        margin: float = 0.0,
        relation_dim: int | None = None,
        core_init: float = 1.0,
    ) -> None:
        super().__init__(dim, p_norm, margin)
        self.relation_dim = dim if relation_dim is None else relation_dim
        if not isinstance(self.relation_dim, int) or self.relation_dim < 1:
            raise ConfigError(
                f"impossible value {relation_dim!r}",
                key="model.backbone_options.relation_dim",
                hint="a positive whole number",
            )
        self.core = nn.Parameter(torch.empty(dim, self.relation_dim, dim).uniform_(-core_init, core_init))

    @property
    def relation_width(self) -> int:
        return self.relation_dim

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        """q_k = Σ_ij h_i W_ijk r_j: h [..., d], r [..., d_r] → [..., d]."""
        hw = (h @ self.core.reshape(self.dim, -1)).unflatten(-1, (self.relation_dim, self.dim))
        return (r.unsqueeze(-1) * hw).sum(-2)

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        """q_i = Σ_jk W_ijk r_j t_k: r [..., d_r], t [..., d] → [..., d]."""
        wt = (t @ self.core.reshape(-1, self.dim).T).unflatten(-1, (self.dim, self.relation_dim))
        return (r.unsqueeze(-2) * wt).sum(-1)

    def flops_per_score(self) -> int:
        """The comparison with a candidate (the query itself costs 2·d·d_r·d once per query)."""
        return 2 * self.dim

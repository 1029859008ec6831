"""TransE (Bordes et al., 2013): f(h, r, t) = γ − ‖h + r − t‖_p, p = ``model.p_norm``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from vlkge.errors import ConfigError
from vlkge.interactions.base import Interaction


class TransE(Interaction):
    """Entities and relations [d]; the ``l2`` kernel (p = 2) has a matrix-product 1-vs-all form.

    Options (``model.backbone_options``):

    - ``normalize_entities``: score ĥ + r − t̂ with ĥ = h / ‖h‖₂, t̂ likewise, computed in the
      forward pass on the rows the representations give (after fusion in multimodal models), so
      the gradient flows through the normalisation — not a projection of the table after each
      step (Bordes et al.'s constraint). The VL-KGE reference code does this.
    - ``normalize_relations``: r̂ = r / ‖r‖₂ likewise (the reference code's ``normalize_relations``).

    Both default to False: plain TransE, as in our defaults.
    """

    def __init__(
        self,
        dim: int,
        p_norm: int = 2,
        margin: float = 0.0,
        normalize_entities: bool = False,
        normalize_relations: bool = False,
    ) -> None:
        super().__init__(dim, p_norm, margin)
        self.kernel = "l2" if p_norm == 2 else "l1"
        for name, value in (
            ("normalize_entities", normalize_entities),
            ("normalize_relations", normalize_relations),
        ):
            if not isinstance(value, bool):
                raise ConfigError(
                    f"expected true or false, got {value!r}",
                    key=f"model.backbone_options.{name}",
                    hint="write true or false (no quotes)",
                )
        self.normalize_entities = normalize_entities
        self.normalize_relations = normalize_relations

    @property
    def views_entities(self) -> bool:
        return self.normalize_entities

    def entity_view(self, x: Tensor) -> Tensor:
        return F.normalize(x, p=2.0, dim=-1) if self.normalize_entities else x

    def relation_view(self, r: Tensor) -> Tensor:
        """A relation vector as the score reads it (L2-normalised with ``normalize_relations``)."""
        return F.normalize(r, p=2.0, dim=-1) if self.normalize_relations else r

    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        return self.entity_view(h) + self.relation_view(r)

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        return self.entity_view(t) - self.relation_view(r)  # ‖h + r - t‖ = ‖h - (t - r)‖

"""A KGE model = entity/relation representations + a stateless interaction function.

The representations here are the structural tables; the multimodal representations (features
with learned projections, fusion over a modality mask) plug in behind the same interface:
``entities(ids)`` → ``[B, w]`` and ``all_entities()`` → ``[N, w]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vlkge.interactions import Interaction, make_interaction
from vlkge.registry import Registry

INITIALISERS: Registry = Registry("initialiser")
INITIALISERS.register("xavier_uniform")(nn.init.xavier_uniform_)
INITIALISERS.register("normal")(nn.init.normal_)
INITIALISERS.register("uniform")(lambda w: nn.init.uniform_(w, -1.0, 1.0))


class StructuralEmbedding(nn.Module):
    """A trainable table [count, width]."""

    def __init__(self, count: int, width: int, init: str = "xavier_uniform") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(count, width))
        INITIALISERS.get(init, key="model.init")(self.weight.data)

    def forward(self, ids: Tensor) -> Tensor:
        """ids [*] → representations [*, width]."""
        return self.weight[ids]

    def all(self) -> Tensor:
        """[count, width]"""
        return self.weight


class KGEModel(nn.Module):
    """Scores triples with ``interaction`` over entity and relation representations."""

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        interaction: Interaction,
        dim: int,
        init: str = "xavier_uniform",
    ) -> None:
        super().__init__()
        self.interaction = interaction
        self.dim = dim
        self.entity = StructuralEmbedding(num_entities, interaction.entity_width(dim), init)
        self.relation = StructuralEmbedding(num_relations, interaction.relation_width(dim), init)
        interaction.init_relations(self.relation.weight.data)

    @property
    def num_entities(self) -> int:
        return self.entity.weight.shape[0]

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Id tensors of one broadcastable shape [*] → scores [*]."""
        return self.interaction.score(self.entity(h), self.relation(r), self.entity(t))

    def score_negatives(self, batch: Tensor, index: Tensor, corrupt_head: Tensor) -> Tensor:
        """Scores of sampled corruptions: batch [B, 3], index [B, K] replacement entities,
        corrupt_head [B, K] bool (True: the head is replaced, else the tail) → [B, K]."""
        h, r, t = self.entity(batch[:, 0]), self.relation(batch[:, 1]), self.entity(batch[:, 2])
        inter = self.interaction
        queries = torch.stack([inter.head_query(r, t), inter.tail_query(h, r)], dim=1)  # [B, 2, w]
        side = (~corrupt_head).long()
        return inter.compare_sampled(queries, self.entity.all(), index, side)

    def score_tails(self, h: Tensor, r: Tensor, candidates: Tensor | None = None) -> Tensor:
        """h, r [B] → scores [B, N] against all entities (or ``candidates`` [N, w])."""
        cand = self.entity.all() if candidates is None else candidates
        return self.interaction.score_tails(self.entity(h), self.relation(r), cand)

    def score_heads(self, r: Tensor, t: Tensor, candidates: Tensor | None = None) -> Tensor:
        """r, t [B] → scores [B, N] of every entity as the head."""
        cand = self.entity.all() if candidates is None else candidates
        return self.interaction.score_heads(self.relation(r), self.entity(t), cand)


def build_model(params: dict[str, Any], num_entities: int, num_relations: int) -> KGEModel:
    """The model described by ``params['model']`` for a graph of the given size."""
    spec = params["model"]
    interaction = make_interaction(spec["backbone"], p_norm=spec["p_norm"], margin=spec["margin"])
    return KGEModel(num_entities, num_relations, interaction, spec["dim"], spec["init"])

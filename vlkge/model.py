"""A KGE model = entity/relation representations + a stateless interaction function.

The entity representations are a structural table (``model.modalities: [structural]``, the
fast path) or, when the run reads features, :class:`vlkge.representations.EntityRepresentations`
(features with learned projections, fused over a modality mask). Both have one interface:
``entity(ids)`` → ``[*, w]`` and ``entity.all()`` → ``[N, w]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkge.interactions import Interaction, make_interaction
from vlkge.registry import Registry
from vlkge.representations import STRUCTURAL, EntityInputs, EntityRepresentations, parse_modalities

INITIALISERS: Registry = Registry("initialiser")
INITIALISERS.register("xavier_uniform")(nn.init.xavier_uniform_)
INITIALISERS.register("normal")(nn.init.normal_)
INITIALISERS.register("uniform")(lambda w: nn.init.uniform_(w, -1.0, 1.0))
# Xavier with the row width as both fans, as for a linear layer fed one-hot rows: U(±sqrt(6/width)).
# Rows start ~sqrt(N / width) times larger than with xavier_uniform over the whole [N, width] table.
INITIALISERS.register("xavier_embedding")(
    lambda w: nn.init.uniform_(w, -((6.0 / w.shape[-1]) ** 0.5), (6.0 / w.shape[-1]) ** 0.5)
)


class StructuralEmbedding(nn.Module):
    """A trainable table [count, width]."""

    def __init__(self, count: int, width: int, init: str = "xavier_uniform") -> None:
        super().__init__()
        self.num_entities = count
        self.sparse = False  # sparse row gradients (set by the trainer for row-wise optimisers)
        self.weight = nn.Parameter(torch.empty(count, width))
        INITIALISERS.get(init, key="model.init")(self.weight.data)

    def forward(self, ids: Tensor) -> Tensor:
        """ids [*] → representations [*, width]."""
        if self.sparse:
            return F.embedding(ids, self.weight, sparse=True)
        # index_select: its backward is an index_add, ~10x faster on CPU than indexing's index_put
        return self.weight.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)

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
        entity: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.interaction = interaction
        self.dim = dim
        self.entity = entity or StructuralEmbedding(num_entities, interaction.entity_width(dim), init)
        self.relation = StructuralEmbedding(num_relations, interaction.relation_width(dim), init)
        interaction.init_relations(self.relation.weight.data)

    @property
    def num_entities(self) -> int:
        return self.entity.num_entities

    def _entities(self, ids: Tensor, table: Tensor | None) -> Tensor:
        """Rows of the batch's precomputed ``table`` (multimodal: all representations computed
        once per batch), or of the structural table when None (the fast path)."""
        return self.entity(ids) if table is None else table[ids]

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor, table: Tensor | None = None) -> Tensor:
        """Id tensors of one broadcastable shape [*] → scores [*] (``table``: see entity_table)."""
        return self.interaction.score(self._entities(h, table), self.relation(r), self._entities(t, table))

    def score_negatives(
        self, batch: Tensor, index: Tensor, corrupt_head: Tensor, table: Tensor | None = None
    ) -> Tensor:
        """Scores of sampled corruptions: batch [B, 3], index [B, K] replacement entities,
        corrupt_head [B, K] bool (True: the head is replaced, else the tail) → [B, K]."""
        h, t = self._entities(batch[:, 0], table), self._entities(batch[:, 2], table)
        r = self.relation(batch[:, 1])
        inter = self.interaction
        queries = torch.stack([inter.head_query(r, t), inter.tail_query(h, r)], dim=1)  # [B, 2, w]
        side = (~corrupt_head).long()
        if table is None:
            sparse = getattr(self.entity, "sparse", False)
            return inter.compare_sampled(queries, self.entity.all(), index, side, sparse)
        return inter.compare_sampled(queries, table, index, side)

    def score_tails(self, h: Tensor, r: Tensor, candidates: Tensor | None = None) -> Tensor:
        """h, r [B] → scores [B, N] against all entities (or ``candidates`` [N, w])."""
        cand = self.entity.all() if candidates is None else candidates
        return self.interaction.score_tails(self.entity(h), self.relation(r), cand)

    def score_heads(self, r: Tensor, t: Tensor, candidates: Tensor | None = None) -> Tensor:
        """r, t [B] → scores [B, N] of every entity as the head."""
        cand = self.entity.all() if candidates is None else candidates
        return self.interaction.score_heads(self.relation(r), self.entity(t), cand)


def build_model(
    params: dict[str, Any], num_entities: int, num_relations: int, inputs: EntityInputs | None = None
) -> KGEModel:
    """The model described by ``params['model']`` for a graph of the given size.

    ``inputs`` (features, masks) are required when ``model.modalities`` goes beyond structural.
    """
    spec = params["model"]
    interaction = make_interaction(spec["backbone"], p_norm=spec["p_norm"], margin=spec["margin"])
    entity = None
    modalities = parse_modalities(spec.get("modalities", [STRUCTURAL]))
    if modalities != [STRUCTURAL] or inputs is not None:
        if inputs is None:
            raise ValueError("a multimodal model needs its EntityInputs")
        entity = EntityRepresentations(
            inputs,
            modalities,
            spec["dim"],
            interaction.entity_factor,
            fusion=spec["fusion"],
            imaginary=spec["imaginary"],
            init=spec["init"],
        )
    return KGEModel(num_entities, num_relations, interaction, spec["dim"], spec["init"], entity=entity)

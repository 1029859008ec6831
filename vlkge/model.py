"""A KGE model = entity and relation representations + an interaction (the backbone).

The entity representations are a structural table (``model.modalities: [structural]``, the fast
path) or fused multimodal ones (:mod:`vlkge.representations.multimodal`); both answer one
interface (:class:`~vlkge.representations.base.EntityRepresentation`). The interaction holds no
rows, only parameters of its own when it has any.

A model that reads features may add a **feature prior** (:mod:`vlkge.prior`; ``model.similarity``
> 0): what the two entities' features say about a triple by themselves — their similarity weighed
per relation, and (``model.typing``) how well each fits its side of the relation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vlkge.config import Config
from vlkge.features.inputs import EntityInputs
from vlkge.features.mentions import Mentions
from vlkge.gathered import rows_at
from vlkge.interactions import Interaction, make_interaction
from vlkge.prior import HEAD, TAIL, VOTE_TABLE, FeaturePrior
from vlkge.representations import (
    BatchRows,
    EntityRepresentation,
    MultimodalRepresentation,
    StructuralEmbedding,
)
from vlkge.votes import graph_votes


@dataclass(frozen=True)
class BatchScores:
    """A training batch's scores: positives [B], corruptions [B, K]; with a feature prior, the
    features-only view of the same triples (:mod:`vlkge.prior`), else None."""

    positive: Tensor
    negative: Tensor
    prior_positive: Tensor | None = None
    prior_negative: Tensor | None = None


class KGEModel(nn.Module):
    """Scores triples with ``interaction`` over entity and relation representations.

    Scoring methods take an optional ``table``: the rows a training step computed for its batch
    (:meth:`EntityRepresentation.for_batch`), the ids then being positions in it; None reads the
    entity representations directly.
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        interaction: Interaction,
        init: str = "xavier_uniform",
        entity: EntityRepresentation | None = None,
        similarity: float = 0.0,
        typing: bool = False,
        alone_similarity: float = 10.0,
        mentions: Mentions | None = None,
        mention_weight: float = 0.0,
        votes_from: Tensor | None = None,
        vote_weight: float = 0.0,
        vote_neighbours: int = 10,
        vote_table: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        """``votes_from``: the train triples [T, 3] the prior's neighbour votes read (with
        ``vote_weight`` > 0; :mod:`vlkge.votes`), through ``vote_table`` (a run's saved neighbour
        table) or one computed from the features."""
        super().__init__()
        self.interaction = interaction
        self.dim = interaction.dim
        self.entity = entity or StructuralEmbedding(num_entities, interaction.entity_width, init)
        self.relation = StructuralEmbedding(num_relations, interaction.relation_width, init)
        interaction.init_relations(self.relation.weight.data)
        self.prior = None
        if similarity > 0:
            if not self.entity.feature_modalities:
                raise ValueError("the feature prior needs entity representations with features")
            votes = None
            if votes_from is not None and vote_weight > 0:
                votes = graph_votes(self.entity, votes_from, num_relations, vote_neighbours, vote_table)
            self.prior = FeaturePrior(
                num_relations,
                self.entity.feature_width,
                similarity,
                typing,
                alone_similarity,
                mentions=mentions,
                mention_weight=mention_weight,
                votes=votes,
                vote_weight=vote_weight,
            )

    @property
    def num_entities(self) -> int:
        return self.entity.num_entities

    def shared_parameters(self) -> list[nn.Parameter]:
        """Dense layers every entity goes through (trained at ``train.projection_lr``)."""
        return self.entity.shared_parameters()

    def prior_parameters(self) -> list[nn.Parameter]:
        """The feature prior's parameters (trained at ``train.prior_lr``)."""
        return [] if self.prior is None else list(self.prior.parameters())

    def entity_rows(self, ids: Tensor, table: Tensor | None = None) -> Tensor:
        """ids [*] → [*, w]: rows of a batch's ``table``, or of the entity representations."""
        return self.entity(ids) if table is None else rows_at(table, ids)

    def prior_of(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor | float:
        """The feature prior of triples of global ids [*] (0 without one)."""
        return 0.0 if self.prior is None else self.prior.pairs(self.entity, h, r, t)

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor, table: Tensor | None = None) -> Tensor:
        """Global id tensors of one broadcastable shape [*] (positions in ``table`` when given,
        which has no prior: see :meth:`score_batch`) → scores [*]."""
        score = self.interaction.score(
            self.entity_rows(h, table), self.relation(r), self.entity_rows(t, table)
        )
        return score if table is not None else score + self.prior_of(h, r, t)

    def score_batch(self, rows: BatchRows, corrupt_head: Tensor) -> BatchScores:
        """A training step's scores of the batch in ``rows``
        (:meth:`EntityRepresentation.for_batch`), corrupt_head [B, K] bool: positives [B] and
        sampled corruptions [B, K], with the feature prior's part of each apart."""
        batch, replacement = rows.batch, rows.replacement
        ends = self.entity_rows(torch.cat([batch[:, 0], batch[:, 2]]), rows.table)  # one gather
        h, t = ends.split(len(batch))
        r = self.relation(batch[:, 1])
        positive = self.interaction.score(h, r, t)
        negative = self.score_negatives(h, r, t, replacement, corrupt_head, rows)
        if self.prior is None:
            return BatchScores(positive, negative)
        prior = self.prior.in_batch(self.entity, rows, corrupt_head)
        return BatchScores(
            positive + prior.positive, negative + prior.negative, prior.alone_positive, prior.alone_negative
        )

    def score_negatives(
        self, h: Tensor, r: Tensor, t: Tensor, index: Tensor, corrupt_head: Tensor, rows: BatchRows
    ) -> Tensor:
        """Scores of sampled corruptions of the batch's triples, given their rows h, t [B, w] and
        relations r [B, w_r]: index [B, K] replacement entities (as ``rows`` numbers them),
        corrupt_head [B, K] bool (True: the head is replaced, else the tail) → [B, K]."""
        inter = self.interaction
        queries = torch.stack([inter.head_query(r, t), inter.tail_query(h, r)], dim=1)  # [B, 2, w]
        side = (~corrupt_head).long()
        if rows.negatives is not None:
            return rows.negatives(queries, index, side)
        if rows.table is None:
            return inter.compare_sampled(queries, self.entity.all(), index, side, self.entity.sparse)
        return inter.compare_sampled(queries, rows.table, index, side)

    def score_tails(
        self, h: Tensor, r: Tensor, candidates: Tensor | None = None, among: Tensor | None = None
    ) -> Tensor:
        """h, r [B] → scores [B, N] against all entities (``candidates`` [N, w]: their rows, if
        already computed); ``among`` [P] entity ids: against those only, [B, P]."""
        cand = self._candidate_rows(candidates, among)
        scores = self.interaction.score_tails(self.entity(h), self.relation(r), cand)
        if self.prior is None:
            return scores
        return scores + self.prior.to_all(self.entity, h, r, TAIL, among)

    def score_heads(
        self, r: Tensor, t: Tensor, candidates: Tensor | None = None, among: Tensor | None = None
    ) -> Tensor:
        """r, t [B] → scores [B, N] of every entity as the head (``among``: as :meth:`score_tails`)."""
        cand = self._candidate_rows(candidates, among)
        scores = self.interaction.score_heads(self.relation(r), self.entity(t), cand)
        if self.prior is None:
            return scores
        return scores + self.prior.to_all(self.entity, t, r, HEAD, among)

    def _candidate_rows(self, candidates: Tensor | None, among: Tensor | None) -> Tensor:
        """The rows [N, w] of every entity (``candidates`` when given), or of ``among`` [P]."""
        rows = self.entity.all() if candidates is None else candidates
        return rows if among is None else rows[among]


def build_model(
    config: Config | Mapping[str, Any],
    num_entities: int,
    num_relations: int,
    inputs: EntityInputs | None = None,
    saved: Mapping[str, Tensor] | None = None,
) -> KGEModel:
    """The model ``config.model`` describes for a graph of the given size (a plain params dict is
    read as a config). ``inputs`` (features, masks) are required for a multimodal model;
    ``saved``: the state a run saved, whose neighbour table is then used, not recomputed."""
    if not isinstance(config, Config):
        config = Config.from_params(dict(config))
    spec = config.model
    interaction = make_interaction(
        spec.backbone, dim=spec.dim, p_norm=spec.p_norm, margin=spec.margin, options=spec.backbone_options
    )
    entity = None
    if spec.multimodal or inputs is not None:
        if inputs is None:
            raise ValueError("a multimodal model needs its EntityInputs")
        entity = MultimodalRepresentation(
            inputs,
            spec.modalities,
            spec.dim,
            interaction.entity_factor,
            fusion=spec.fusion,
            fusion_options=spec.fusion_options,
            imaginary=spec.imaginary,
            init=spec.init,
            without_structure=spec.without_structure,
        )
    similarity = spec.similarity if entity is not None else 0.0
    return KGEModel(
        num_entities,
        num_relations,
        interaction,
        spec.init,
        entity=entity,
        similarity=similarity,
        typing=spec.typing,
        alone_similarity=spec.alone_similarity,
        mentions=inputs.mentions if inputs is not None else None,
        mention_weight=spec.mentions,
        votes_from=inputs.train if inputs is not None else None,
        vote_weight=spec.votes,
        vote_neighbours=spec.vote_neighbours,
        vote_table=saved_vote_table(saved),
    )


def saved_vote_table(state: Mapping[str, Tensor] | None) -> tuple[Tensor, Tensor] | None:
    """The neighbour table in a saved model state (None: none saved, as before stop 20)."""
    keys = [f"prior.{name}" for name in VOTE_TABLE]
    if state is None or not all(key in state for key in keys):
        return None
    return state[keys[0]], state[keys[1]]

"""The feature prior of multimodal models: what an entity's features say about a triple by
themselves, added to the backbone's score.

    score(h, r, t) = backbone(e_h, r, e_t) + prior(h, r, t)
    prior(h, r, t) = w_r · sim(h, t) + μ_r(h, t)                     h and t with structure
                     v_r · sim(h, t) + τᴴ_r(h) + τᵀ_r(t) + μ'_r(h, t)   otherwise (model.typing)

- ``sim(h, t)``: the feature similarity of the two entities (mean cosine over the modalities both
  have, 0 for an entity with itself: :meth:`EntityRepresentation.similarity`), weighed per relation
  by ``w`` [R] (starts at ``model.similarity``): untrained, the model ranks like a nearest-neighbour
  lookup over the features;
- ``τˢ_r(e) = ⟨ρˢ_r, x̂_e⟩ + βˢ_r·[e has no structure]`` (``model.typing``): which entities fit side
  s ∈ {head, tail} of relation r, read from their normalised features x̂ [D] (all modalities side
  by side), plus a learned offset for entities without structure (unseen in train, or
  structure-dropped in a training batch) that calibrates them against entities with structure.
  This **features-only view** (with its own similarity weight ``v`` [R], which starts at
  ``model.alone_similarity``: cosines between candidates differ by tenths, and typing
  learnt against sampled negatives soon outweighs a weight near 1) stands in for a pair with
  an entity without structural row; for two entities with structure the backbone already knows
  their types and only ``w_r · sim`` is added.

``train.prior_loss`` trains the features-only view, v_r · sim(h, t) + ⟨ρᴴ_r, x̂_h⟩ + ⟨ρᵀ_r, x̂_t⟩,
on every training triple as a second loss: so it is learnt from the whole graph, although it
only ever scores pairs with a structureless entity.

- ``μ_r(h, t) = a_r · M[h, t] + b_r · M[t, h]`` (``model.mentions``): whether h's text names t
  and whether t's text names h (:mod:`vlkge.features.mentions`), weighed per relation and
  direction, one pair of weights for each view (μ' for the features-only one); the weights start
  at ``model.mentions`` × the view's similarity weight.

- ``ν_r(h, t) = c_r · fwd(h, r, t) + d_r · bwd(h, r, t)`` (``model.votes``): the votes of the
  training triples of h's and t's nearest feature neighbours (:mod:`vlkge.votes`), weighed per
  relation and direction, a pair of weights for each view (ν' for the features-only one); ν
  starts at 0 (the backbone knows two structured entities: votes there cost WN9-IMG's seen
  entities .02 on valid), ν' at ``model.votes`` × its similarity weight, then fitted to the
  training triples before training (:mod:`vlkge.calibration`).

No term has per-entity parameters, so they carry over to entities never seen in training as they
are. The parameters (``w``, ``v`` [R], ``ρ`` [2, R, D], ``β`` [2, R], ``a``, ``b``, ``c``, ``d``
[2, R]) train at ``train.prior_lr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vlkge.features.mentions import Mentions
from vlkge.gathered import rows_at
from vlkge.representations.base import BatchRows, EntityRepresentation
from vlkge.votes import NeighbourVotes

HEAD, TAIL = 0, 1
#: the two views of the prior: entities with structure (joint) and the features-only view (alone)
JOINT, ALONE = 0, 1
#: a training batch's typing is read from that of every (entity, side, relation) when that has at
#: most this many entries per sampled pair (one product and a gather beat that many gathered dot
#: products: benchmarks/README.md), else each pair's is computed
TYPING_TABLE_PER_PAIR = 4
#: the buffers holding the votes' neighbour table: ids [N, k], weights [N, k]
VOTE_TABLE = ("vote_neighbours", "vote_shares")
#: looked-up mentions of pairs: (M[h, t], M[t, h]), any one shape
Mentioned = tuple[Tensor, Tensor]


class FeaturePrior(nn.Module):
    """The prior terms for ``num_relations`` relations over features of total width ``width``."""

    def __init__(
        self,
        num_relations: int,
        width: int,
        similarity: float,
        typing: bool,
        alone_similarity: float = 10.0,
        mentions: Mentions | None = None,
        mention_weight: float = 0.0,
        votes: NeighbourVotes | None = None,
        vote_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_relations,), float(similarity)))
        self.alone_weight = self.typing = self.unstructured = None
        if typing:
            self.alone_weight = nn.Parameter(torch.full((num_relations,), float(alone_similarity)))
            self.typing = nn.Parameter(torch.zeros(2, num_relations, width))
            self.unstructured = nn.Parameter(torch.zeros(2, num_relations))
        self.mentions = mentions if mention_weight > 0 else None
        self.mention = None
        if self.mentions is not None:
            start = torch.tensor([similarity, alone_similarity]) * mention_weight  # [view]
            self.mention = nn.Parameter(start.view(2, 1, 1).repeat(1, 2, num_relations))  # [view, dir, R]
        self.votes = votes if vote_weight > 0 else None
        self.vote = None
        if self.votes is not None:
            # the joint view's votes start at 0: the backbone already knows two structured entities
            start = torch.tensor([0.0, alone_similarity]) * vote_weight  # [view]
            self.vote = nn.Parameter(start.view(2, 1, 1).repeat(1, 2, num_relations))  # [view, dir, R]
            # the neighbour table is saved with the run: a loaded model votes as it was trained
            self.register_buffer(VOTE_TABLE[0], self.votes.neighbours.clone())
            self.register_buffer(VOTE_TABLE[1], self.votes.weights.clone())

    def _load_from_state_dict(self, state: dict[str, Tensor], prefix: str, *args: Any, **kwargs: Any) -> None:
        """Load as usual; a run saved before its neighbour table was kept (stop 19) keeps the one
        computed here, and the votes then read the loaded table."""
        if self.votes is not None:
            for name in VOTE_TABLE:
                state.setdefault(prefix + name, getattr(self, name))
        super()._load_from_state_dict(state, prefix, *args, **kwargs)
        if self.votes is None:
            return
        neighbours, shares = (getattr(self, name).cpu() for name in VOTE_TABLE)
        # a model built from the same saved table (load_model) already votes through it
        if not (torch.equal(neighbours, self.votes.neighbours) and torch.equal(shares, self.votes.weights)):
            self.votes.use_table(neighbours, shares)

    def _mention(
        self, view: int, r: Tensor, found: Mentioned | None, voted: Mentioned | None = None
    ) -> Tensor | float:
        """μ_r + ν_r of one view from ``found`` = (M[h, t], M[t, h]) and ``voted`` = (fwd, bwd)
        [*] (r broadcast; 0 for those absent)."""
        total: Tensor | float = 0.0
        for weights, pair in ((self.mention, found), (self.vote, voted)):
            if pair is not None:
                total = total + weights[view, 0, r] * pair[0] + weights[view, 1, r] * pair[1]
        return total

    def _mentioned(self, h: Tensor, t: Tensor) -> Mentioned | None:
        """(M[h, t], M[t, h]) of global ids [*], looked up once for both views (None without)."""
        if self.mentions is None:
            return None
        return self.mentions.pairs(h, t), self.mentions.pairs(t, h)

    def _anchor_mentions(self, anchor: Tensor, side: int, among: Tensor | None) -> Mentioned | None:
        """(M[h, t], M[t, h]) [B, N] of ``anchor`` [B] with every candidate on ``side`` (those of
        ``among`` [P]: [B, P])."""
        if self.mentions is None:
            return None
        rows = self.mentions.names(anchor, among), self.mentions.named_by(anchor, among)
        return oriented(rows, side)

    def _fit(self, side: int, r: Tensor, units: tuple[Tensor, ...]) -> Tensor:
        """⟨ρˢ_r, x̂⟩ of entities with normalised features ``units`` (each modality's [*, d_m]:
        :meth:`EntityRepresentation.unit_rows`), relations r [*] → [*]."""
        weights = _blocks(rows_at(self.typing[side], r), units)
        return sum(torch.linalg.vecdot(w, unit) for w, unit in zip(weights, units, strict=True))

    def _offset(self, side: int, r: Tensor, structured: Tensor) -> Tensor:
        """βˢ_r for the entities without structure among ``structured`` [*] (0 for the others)."""
        return self.unstructured[side, r] * (~structured).float()

    def _typing_of_all(self, reps: EntityRepresentation) -> Tensor:
        """⟨ρˢ_r, x̂_e⟩ of every entity e on each side s of every relation r → [N, 2, R]."""
        sides, relations, width = self.typing.shape
        return reps.unit_products(self.typing.reshape(sides * relations, width)).view(-1, sides, relations)

    def _batch_typing(
        self,
        reps: EntityRepresentation,
        r: Tensor,
        ends: tuple[Tensor, Tensor],
        units: tuple[tuple[Tensor, ...], tuple[Tensor, ...]],
        replaced: tuple[Tensor, Tensor],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """A training batch's ⟨ρˢ_r, x̂_e⟩ under r [B]: of its heads and tails [B] (global ids
        ``ends``, their :meth:`EntityRepresentation.unit_rows` ``units``) and of its replaced
        entities on their side, ``replaced`` = (global ids [B, K], side [B, K]: 0 head, 1 tail).

        Read from the typing of every (entity, side, relation), one product [N, 2, R], when that
        has at most :data:`TYPING_TABLE_PER_PAIR` entries per sampled pair; otherwise each pair's
        is a dot product read in place (a large graph's [2, R, N] would cost more)."""
        index, side = replaced
        sides, relations, _ = self.typing.shape
        if reps.num_entities * sides * relations > TYPING_TABLE_PER_PAIR * index.numel():
            head, tail = self._fit(HEAD, r, units[0]), self._fit(TAIL, r, units[1])
            return head, tail, self._fit_sampled(reps, r, index, side)
        flat = self._typing_of_all(reps).reshape(-1)  # [(e·2 + s)·R + r]
        head = rows_at(flat, (ends[0] * sides + HEAD) * relations + r)
        tail = rows_at(flat, (ends[1] * sides + TAIL) * relations + r)
        return head, tail, rows_at(flat, (index * sides + side) * relations + r.unsqueeze(1))

    def _fit_sampled(self, reps: EntityRepresentation, r: Tensor, index: Tensor, side: Tensor) -> Tensor:
        """⟨ρˢ_r, x̂_e⟩ of sampled entities e = ``index`` [B, K] (global ids) on ``side`` [B, K]
        (0 head, 1 tail) of r [B] → [B, K], read in place from the unit tables (no [B, K, D]
        gather)."""
        queries = self.typing.index_select(1, r).transpose(0, 1)  # [B, 2, D]
        total = torch.zeros(index.shape, device=index.device)
        blocks = _blocks(queries, reps.unit_tables())
        for modality, block in zip(reps.feature_modalities, blocks, strict=True):
            total = total + reps.unit_dot_sampled(modality, block.contiguous(), index, side)
        return total

    def _candidates(
        self, reps: EntityRepresentation, side: int, r: Tensor, among: Tensor | None, structured: Tensor
    ) -> Tensor:
        """τˢ_r of every entity (of ``among`` [P]) as the candidate on ``side`` of r [B] → [B, N]
        ([B, P]): typing + offset; ``structured`` [N] ([P]): which of those candidates have
        structure."""
        units = reps.unit_tables()
        offsets = self._offset(side, r.unsqueeze(1), structured.unsqueeze(0))
        for weights, unit in zip(_blocks(rows_at(self.typing[side], r), units), units, strict=True):
            offsets = offsets + weights @ (unit if among is None else unit[among]).T
        return offsets

    def pairs(self, reps: EntityRepresentation, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Global ids h, r, t [*] → the prior of each triple [*]."""
        sim = reps.similarity(h, t)
        found = self._mentioned(h, t)
        structured = reps.structured()
        voted = None
        if self.votes is not None:
            voted = tuple(v.to(sim.device) for v in self.votes.pairs(h, r, t, structured[h], structured[t]))
        joint = self.weight[r] * sim + self._mention(JOINT, r, found, voted)
        if self.typing is None:
            return joint
        alone = self.alone_weight[r] * sim + self._mention(ALONE, r, found, voted)
        alone = alone + self._fit(HEAD, r, reps.unit_rows(h))
        alone = alone + self._fit(TAIL, r, reps.unit_rows(t))
        alone = alone + self._offset(HEAD, r, structured[h]) + self._offset(TAIL, r, structured[t])
        return torch.where(structured[h] & structured[t], joint, alone)

    def to_all(
        self, reps: EntityRepresentation, anchor: Tensor, r: Tensor, side: int, among: Tensor | None = None
    ) -> Tensor:
        """Queries about ``anchor`` [B] under ``r`` [B] whose candidates fill ``side`` → [B, N]
        (only the candidates ``among`` [P], entity ids: [B, P])."""
        sim = reps.similarity_to_all(anchor, among)
        found = self._anchor_mentions(anchor, side, among)
        voted = None if self.votes is None else self.votes.rows(anchor, r, side, among, sim.device)
        joint = self.weight[r].unsqueeze(1) * sim + self._mention(JOINT, r.unsqueeze(1), found, voted)
        if self.typing is None:
            return joint
        structured = reps.structured()
        candidate_structured = structured if among is None else structured[among]
        candidates = self._candidates(reps, side, r, among, candidate_structured)
        candidates = candidates + self._mention(ALONE, r.unsqueeze(1), found, voted)
        given = self._fit(1 - side, r, reps.unit_rows(anchor))
        given = given + self._offset(1 - side, r, structured[anchor])
        alone = self.alone_weight[r].unsqueeze(1) * sim + candidates + given.unsqueeze(1)
        both = structured[anchor].unsqueeze(1) & candidate_structured.unsqueeze(0)  # [B, N]
        return torch.where(both, joint, alone)

    def for_new(
        self,
        reps: EntityRepresentation,
        features: dict[str, Tensor],
        r: Tensor,
        side: int,
        mentions: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Queries about a new entity (no structure) with ``features`` {m: [B, d_m]} under ``r``
        [B], whose candidates fill ``side`` → [B, N]: the features-only view (w·sim without
        typing). ``mentions``: its rows [B, N] (what its text names, what names it)."""
        sim = reps.similarity_to_features(features)
        found = None if mentions is None or self.mentions is None else oriented(mentions, side)
        voted = None if self.votes is None else self.votes.for_new(sim, r, side, sim.device)
        if self.typing is None:
            return self.weight[r].unsqueeze(1) * sim + self._mention(JOINT, r.unsqueeze(1), found, voted)
        candidates = self._candidates(reps, side, r, None, reps.structured())
        candidates = candidates + self._mention(ALONE, r.unsqueeze(1), found, voted)
        given = self._fit(1 - side, r, reps.unit_of_features(features)) + self.unstructured[1 - side, r]
        return self.alone_weight[r].unsqueeze(1) * sim + candidates + given.unsqueeze(1)

    def in_batch(self, reps: EntityRepresentation, rows: BatchRows, corrupt_head: Tensor) -> BatchPrior:
        """A training batch's priors from its own rows (:class:`BatchPrior`)."""
        r = rows.batch[:, 1]
        h, t = rows.batch[:, 0], rows.batch[:, 2]
        ids = rows.ids if rows.ids is not None else torch.arange(reps.num_entities, device=r.device)
        (gh, gt), (nh, nt) = self._batch_pairs(ids, h, t, rows.replaced_ids, corrupt_head)
        units_h, units_t = reps.unit_rows(gh), reps.unit_rows(gt)  # gathered once
        sim_positive, sim_negative = reps.similarity_in_batch(rows, corrupt_head, (units_h, units_t))
        found_positive = found_negative = voted_positive = voted_negative = None
        if self.mentions is not None:
            found_positive, found_negative = self._mentioned(gh, gt), self._mentioned(nh, nt)
        if self.votes is not None:
            voted_positive, voted_negative = self._batch_votes(rows, ids, (gh, gt), (nh, nt), corrupt_head)
        positive = self.weight[r] * sim_positive + self._mention(JOINT, r, found_positive, voted_positive)
        negative = self.weight[r].unsqueeze(1) * sim_negative
        negative = negative + self._mention(JOINT, r.unsqueeze(1), found_negative, voted_negative)
        if self.typing is None:
            return BatchPrior(positive, negative, positive, negative)
        structured = rows.structured
        # the replaced entity's fit on its side (0: head, 1: tail)
        side = (~corrupt_head).long()
        head, tail, replaced = self._batch_typing(
            reps, r, (gh, gt), (units_h, units_t), (rows.replaced_ids, side)
        )
        kept = torch.where(corrupt_head, tail.unsqueeze(1), head.unsqueeze(1))
        weight = self.alone_weight[r]
        alone_positive = weight * sim_positive + head + tail
        alone_positive = alone_positive + self._mention(ALONE, r, found_positive, voted_positive)
        alone_negative = weight.unsqueeze(1) * sim_negative + kept + replaced
        alone_negative = alone_negative + self._mention(ALONE, r.unsqueeze(1), found_negative, voted_negative)
        # with structure: the features-only view, calibrated by the offsets, stands in for a pair
        # with a structureless entity
        offset = self.unstructured[:, r]  # [2, B]
        calibrated = alone_positive + offset[HEAD] * (~structured[h]) + offset[TAIL] * (~structured[t])
        kept_structured = torch.where(corrupt_head, structured[t].unsqueeze(1), structured[h].unsqueeze(1))
        kept_offset = torch.where(corrupt_head, offset[TAIL].unsqueeze(1), offset[HEAD].unsqueeze(1))
        replaced_structured = rows_at(structured, rows.replacement)
        calibrated_negative = (
            alone_negative
            + kept_offset * (~kept_structured)
            + offset.T.gather(1, side) * (~replaced_structured)  # β of the replaced side
        )
        return BatchPrior(
            torch.where(structured[h] & structured[t], positive, calibrated),
            torch.where(kept_structured & replaced_structured, negative, calibrated_negative),
            alone_positive,
            alone_negative,
        )

    def _batch_votes(
        self,
        rows: BatchRows,
        ids: Tensor,
        positive: tuple[Tensor, Tensor],
        negative: tuple[Tensor, Tensor],
        corrupt_head: Tensor,
    ) -> tuple[Mentioned, Mentioned]:
        """(fwd, bwd) of a batch's positives [B] and negatives [B, K] from their global ids; an
        entity whose structure the batch dropped has no triples to vote with, as at test time."""
        seen = rows.structured if rows.structured is not None else torch.ones(len(ids), dtype=torch.bool)
        h, t, replaced = seen[rows.batch[:, 0]], seen[rows.batch[:, 2]], rows_at(seen, rows.replacement)
        r = rows.batch[:, 1]
        negative_h_seen = torch.where(corrupt_head, replaced, h.unsqueeze(1))
        negative_t_seen = torch.where(corrupt_head, t.unsqueeze(1), replaced)
        device = r.device
        voted_positive = self.votes.pairs(positive[0], r, positive[1], h, t)
        voted_negative = self.votes.pairs(
            negative[0], r.unsqueeze(1), negative[1], negative_h_seen, negative_t_seen
        )
        return tuple(v.to(device) for v in voted_positive), tuple(v.to(device) for v in voted_negative)

    @staticmethod
    def _batch_pairs(
        ids: Tensor, h: Tensor, t: Tensor, replaced: Tensor, corrupt_head: Tensor
    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """Global (head, tail) ids of a batch's positives [B] and sampled negatives [B, K] from
        the positions h, t [B] in its rows (``ids`` [U] their global ids) and the global ids of
        the replaced entities ``replaced`` [B, K]."""
        gh, gt, gr = ids[h], ids[t], replaced
        negative_heads = torch.where(corrupt_head, gr, gh.unsqueeze(1))
        negative_tails = torch.where(corrupt_head, gt.unsqueeze(1), gr)
        return (gh, gt), (negative_heads, negative_tails)


def _blocks(x: Tensor, units: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """x [*, D] split along its last dimension into the widths d_m of ``units`` ([..., d_m] each)."""
    return torch.split(x, [unit.shape[-1] for unit in units], dim=-1)


def oriented(rows: tuple[Tensor, Tensor], side: int) -> Mentioned:
    """An anchor's mention rows (what its text names, what names it) [B, N] as (M[h, t], M[t, h])
    for candidates filling ``side``."""
    names, named_by = rows
    return (names, named_by) if side == TAIL else (named_by, names)


@dataclass(frozen=True)
class BatchPrior:
    """A training batch's prior: as it adds to the backbone's score (``positive`` [B],
    ``negative`` [B, K]) and the features-only view of the same triples (``alone_*``)."""

    positive: Tensor
    negative: Tensor
    alone_positive: Tensor
    alone_negative: Tensor

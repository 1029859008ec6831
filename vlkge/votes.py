"""Neighbour votes: what the training triples of an entity's look-alikes say about a triple (a
term of the feature prior, :mod:`vlkge.prior`).

    fwd(h, r, t) = Σ_{n ∈ kNN(h)} ω(h, n) · [(n, r, t) ∈ train]     h's look-alikes link to t
    bwd(h, r, t) = Σ_{n ∈ kNN(t)} ω(t, n) · [(h, r, n) ∈ train]     h links to t's look-alikes

``kNN(e)``: the ``k`` entities with training triples whose features are most similar to e's (the
prior's similarity: mean cosine over the modalities both have), e itself left out; ``ω``: those
similarities clamped at 0 and scaled to sum to 1, so both votes are weighted fractions in [0, 1]
on any graph. An entity never seen in train has no triples: about it only its look-alikes vote
(fwd of a tail query, bwd of a head query). A triple never votes for itself (e ∉ kNN(e)).

The neighbour table is computed once from the frozen features: exactly (chunked products) up to
:data:`EXACT_PAIRS` entity × voter pairs, above that from an inverted file's candidates, re-scored
exactly (WikiArt's 180,000 × 144,000 in 53–110 s on one loaded core, exact search ≈ 24 min
there; it finds .76 of the exact 10: benchmarks/neighbour_table.py).
"""

from __future__ import annotations

import logging
import math
import time

import torch
from torch import Tensor

from vlkge.csr import KeyedSums, Lists, scatter_rows
from vlkge.representations.base import EntityRepresentation

log = logging.getLogger(__name__)

HEAD, TAIL = 0, 1
#: entity × voter pairs up to which the neighbour table is computed exactly
EXACT_PAIRS = 2_000_000_000
#: summed (entity, relation, other side) votes kept for one-lookup pairs up to this many entries
#: (12 bytes each; WN9-IMG: 0.24 M; WikiArt-v1: 22 M, 266 MB, built in 10 s), else pairs read
#: the table
SUMMED_ENTRIES = 50_000_000
#: anchors per exact similarity block
CHUNK = 1024


class NeighbourVotes:
    """The votes of a graph's training triples [T, 3] through its neighbour table ``neighbours``
    [N, k] (global ids) with weights ``weights`` [N, k] (rows sum to 1, or 0 without any)."""

    def __init__(
        self, train: Tensor, num_entities: int, num_relations: int, neighbours: Tensor, weights: Tensor
    ) -> None:
        self.n, self.r = num_entities, num_relations
        train = train.cpu()
        h, r, t = train[:, 0].long(), train[:, 1].long(), train[:, 2].long()
        self.voters = voters_of(train)
        self.held = KeyedSums((h * self.r + r) * self.n + t)  # the training triples
        # (entity, relation) → the entities on the other side: tails of (h, r), heads of (t, r)
        self.tails = Lists(h * self.r + r, t, self.n * self.r)
        self.heads = Lists(t * self.r + r, h, self.n * self.r)
        # entity → its triples as (relation, other side), r·N + other: as head, as tail
        self.as_head = Lists(h, r * self.n + t, self.n)
        self.as_tail = Lists(t, r * self.n + h, self.n)
        self.use_table(neighbours, weights)

    def use_table(self, neighbours: Tensor, weights: Tensor) -> None:
        """Vote through the neighbour table ``neighbours`` [N, k] (global ids), ``weights`` [N, k]
        (a run's saved one, so a loaded model votes as it was trained)."""
        self.neighbours, self.weights = neighbours.long().cpu(), weights.float().cpu()
        owners, voters, shared = self._entries()
        # voter o → the entities c with o ∈ kNN(c), weighted ω(c, o)
        self.voted_by = Lists(voters, owners, self.n, shared)
        self._summed: tuple[KeyedSums, KeyedSums] | None = None
        self._too_many = False

    def _entries(self) -> tuple[Tensor, Tensor, Tensor]:
        """The table's entries of positive weight, flat [L]: (entity e, its neighbour n, ω(e, n))."""
        kept = self.weights.reshape(-1) > 0
        owners = torch.arange(self.n).repeat_interleave(self.neighbours.shape[1])[kept]
        return owners, self.neighbours.reshape(-1)[kept], self.weights.reshape(-1)[kept]

    @property
    def summed(self) -> tuple[KeyedSums, KeyedSums] | None:
        """Every vote summed once per (entity, relation, other side), built at the first
        :meth:`pairs` (training; evaluation reads rows): a pair is then one lookup, not k (a
        training step's 51,200 pairs: 1M lookups) — when the sums fit in :data:`SUMMED_ENTRIES`."""
        if self._summed is None and not self._too_many:
            owners, voters, shared = self._entries()
            degree = self.as_head.offsets.diff() + self.as_tail.offsets.diff()
            self._too_many = int(degree[voters].sum()) > SUMMED_ENTRIES
            if self._too_many:
                return None
            self._summed = (
                self._sums(self.as_head, owners, voters, shared),
                self._sums(self.as_tail, owners, voters, shared),
            )
        return self._summed

    def _sums(self, lists: Lists, owners: Tensor, voters: Tensor, shared: Tensor) -> KeyedSums:
        """Σ ω(e, n) over the neighbours n of each e (``owners``, ``voters``, ``shared`` [L]) and
        n's triples in ``lists``: as head, (n, r, t) → key (e·R + r)·N + t; as tail, (h, r, n) →
        (e·R + r)·N + h."""
        at, other, _ = lists.expand(voters)
        return KeyedSums(owners[at] * (self.r * self.n) + other, shared[at])

    def _holds(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """[(h, r, t) ∈ train] of ids (broadcast) → float."""
        h, r, t = torch.broadcast_tensors(h, r, t)
        return self.held.holds((h * self.r + r) * self.n + t).float()

    def pairs(self, h: Tensor, r: Tensor, t: Tensor, h_seen: Tensor, t_seen: Tensor) -> tuple[Tensor, Tensor]:
        """(fwd, bwd) of triples of global ids [*] (broadcast); ``*_seen`` [*] bool: whether the
        entity's triples count (False for one structure-dropped in a training batch, as for one
        unseen in train)."""
        h, r, t = torch.broadcast_tensors(h.cpu(), r.cpu(), t.cpu())
        summed = self.summed
        if summed is not None:
            fwd = summed[0][(h * self.r + r) * self.n + t]
            bwd = summed[1][(t * self.r + r) * self.n + h]
            return fwd * t_seen.cpu(), bwd * h_seen.cpu()
        fwd = (self.weights[h] * self._holds(self.neighbours[h], r.unsqueeze(-1), t.unsqueeze(-1))).sum(-1)
        bwd = (self.weights[t] * self._holds(h.unsqueeze(-1), r.unsqueeze(-1), self.neighbours[t])).sum(-1)
        return fwd * t_seen.cpu(), bwd * h_seen.cpu()

    def anchored(
        self, neighbours: Tensor, weights: Tensor, r: Tensor, side: int, among: Tensor | None
    ) -> Tensor:
        """The look-alikes' votes of queries whose given entity has ``neighbours``, ``weights``
        [B, k] under ``r`` [B], for every candidate filling ``side`` → [B, N] ([B, P] ``among``)."""
        lists = self.tails if side == TAIL else self.heads
        b, k = neighbours.shape
        owner, column, _ = lists.expand((neighbours * self.r + r.unsqueeze(1)).reshape(-1))
        return scatter_rows(owner // k, column, weights.reshape(-1)[owner], b, self.n, among)

    def rows(
        self,
        anchor: Tensor,
        r: Tensor,
        side: int,
        among: Tensor | None = None,
        device: torch.device | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(fwd, bwd) [B, N] ([B, P] ``among``) of queries about ``anchor`` [B] under ``r`` [B]
        whose candidates fill ``side``."""
        anchor, r = anchor.cpu(), r.cpu()
        own = self.anchored(self.neighbours[anchor], self.weights[anchor], r, side, among)
        # the anchor's own triples, through the candidates' look-alikes
        lists = self.tails if side == TAIL else self.heads
        owner, linked, _ = lists.expand(anchor * self.r + r)
        via, candidate, weight = self.voted_by.expand(linked)
        theirs = scatter_rows(owner[via], candidate, weight, len(anchor), self.n, among)
        fwd, bwd = (own, theirs) if side == TAIL else (theirs, own)
        return fwd.to(device), bwd.to(device)

    def for_new(
        self, similarity: Tensor, r: Tensor, side: int, device: torch.device | None = None
    ) -> tuple[Tensor, Tensor]:
        """(fwd, bwd) [B, N] of queries about new entities (no triples) whose feature similarity
        with every entity is ``similarity`` [B, N], under ``r`` [B], candidates filling ``side``."""
        top, at = similarity.cpu()[:, self.voters].topk(
            min(self.neighbours.shape[1], len(self.voters)), dim=1
        )
        own = self.anchored(self.voters[at], shares(top), r.cpu(), side, None).to(device)
        none = torch.zeros_like(own)
        return (own, none) if side == TAIL else (none, own)


def voters_of(train: Tensor) -> Tensor:
    """The entities with training triples [V] (sorted ids) of triples [T, 3]."""
    return torch.unique(torch.cat([train[:, 0], train[:, 2]]).long().cpu())


def graph_votes(
    reps: EntityRepresentation,
    train: Tensor,
    num_relations: int,
    k: int,
    table: tuple[Tensor, Tensor] | None = None,
) -> NeighbourVotes:
    """The neighbour votes of a graph's ``train`` triples [T, 3] over the features of ``reps``,
    through ``table`` (ids, weights [N, k]: a run's saved one) or one computed here."""
    neighbours, weights = table if table is not None else neighbour_table(reps, voters_of(train), k)
    return NeighbourVotes(train, reps.num_entities, num_relations, neighbours, weights)


def neighbour_table(
    reps: EntityRepresentation, voters: Tensor, k: int, *, exact_pairs: int = EXACT_PAIRS
) -> tuple[Tensor, Tensor]:
    """Each entity's ``k`` most similar ``voters`` [V] by features (itself left out) → (global
    ids [N, k], weights ω [N, k]: similarities clamped at 0, rows scaled to sum 1)."""
    n = reps.num_entities
    k = min(k, len(voters))
    start = time.perf_counter()
    with torch.no_grad():
        if n * len(voters) <= exact_pairs:
            ids, sims = _exact(reps, voters, k)
        else:
            ids, sims = _approximate(reps, voters, k)
    log.info(
        "neighbour votes: %d nearest of %d entities among %d voters in %.0f s",
        k,
        n,
        len(voters),
        time.perf_counter() - start,
    )
    return ids, shares(sims)


def shares(similarities: Tensor) -> Tensor:
    """Neighbours' similarities [B, k] → their weights ω: clamped at 0, rows scaled to sum 1 (all
    0 where none is positive)."""
    weights = similarities.clamp_min(0.0)
    return weights / weights.sum(1, keepdim=True).clamp_min(1e-12)


def _exact(reps: EntityRepresentation, voters: Tensor, k: int) -> tuple[Tensor, Tensor]:
    ids, sims = [], []
    device = reps.unit_tables()[0].device
    among = voters.to(device)
    for start in range(0, reps.num_entities, CHUNK):
        anchor = torch.arange(start, min(start + CHUNK, reps.num_entities))
        block = reps.similarity_to_all(anchor.to(device), among).cpu()
        block.masked_fill_(anchor.unsqueeze(1) == voters.unsqueeze(0), -math.inf)
        top, at = block.topk(k, dim=1)
        ids.append(voters[at])
        sims.append(top.clamp_min(-1.0))  # a self-only row: -inf → weight 0
    return torch.cat(ids), torch.cat(sims)


def _approximate(
    reps: EntityRepresentation, voters: Tensor, k: int, probes: int = 8
) -> tuple[Tensor, Tensor]:
    """Candidates from an inverted file over the side-by-side unit features (their inner product
    adds the cosines of the modalities both have): √V lists by spherical k-means over the voters,
    each entity compared with the voters of its ``probes`` nearest lists (one matrix product per
    list), the best 2k + 1 re-scored by the exact similarity."""
    units = torch.cat(reps.unit_tables(), dim=1).cpu().float()
    voter_units = units[voters]
    centroids = _spherical_kmeans(voter_units, max(1, round(math.sqrt(len(voters)))))
    lists = len(centroids)
    members_of = Lists(_nearest_centroids(voter_units, centroids, 1).squeeze(1), voters, lists)
    probes = min(probes, lists)
    probed = _nearest_centroids(units, centroids, probes).reshape(-1)  # [N · probes]
    # list → the (entity, probe slot) pairs that probe it, as positions in ``probed``
    probed_by = Lists(probed, torch.arange(len(probed)), lists)
    wanted = min(2 * k + 1, len(voters))
    found = torch.full((len(units), probes, wanted), -1, dtype=torch.long)
    found_sims = torch.full((len(units), probes, wanted), -math.inf)
    for index in range(lists):
        members, pairs = members_of.at(index), probed_by.at(index)
        if not len(members) or not len(pairs):
            continue
        anchor, slot = pairs // probes, pairs % probes
        block = units[anchor] @ units[members].T
        block.masked_fill_(anchor.unsqueeze(1) == members.unsqueeze(0), -math.inf)
        top, at = block.topk(min(wanted, len(members)), dim=1)
        found[anchor, slot, : top.shape[1]] = members[at]
        found_sims[anchor, slot, : top.shape[1]] = top
    _, best = found_sims.reshape(len(units), -1).topk(wanted, dim=1)
    candidates = found.reshape(len(units), -1).gather(1, best)  # -1: fewer found (small lists)
    missing = candidates < 0
    candidates = candidates.clamp_min(0)
    device = reps.unit_tables()[0].device
    anchor = torch.arange(reps.num_entities).unsqueeze(1).expand_as(candidates)
    sims = torch.cat(
        [
            reps.similarity(anchor[at : at + CHUNK].to(device), candidates[at : at + CHUNK].to(device)).cpu()
            for at in range(0, reps.num_entities, CHUNK)
        ]
    )
    sims.masked_fill_((anchor == candidates) | missing, -math.inf)
    top, at = sims.topk(k, dim=1)
    return candidates.gather(1, at), top.clamp_min(-1.0)


def _spherical_kmeans(points: Tensor, lists: int, rounds: int = 10, sample: int = 64) -> Tensor:
    """``lists`` unit centroids [L, D] of unit ``points`` [V, D] (seeded; ``sample`` × L points)."""
    generator = torch.Generator().manual_seed(0)
    chosen = points[torch.randperm(len(points), generator=generator)[: sample * lists]]
    centroids = chosen[:lists].clone()
    for _ in range(rounds):
        assigned = (chosen @ centroids.T).argmax(1)
        sums = torch.zeros_like(centroids).index_add_(0, assigned, chosen)
        filled = torch.bincount(assigned, minlength=lists) > 0  # an empty list keeps its centroid
        centroids[filled] = torch.nn.functional.normalize(sums[filled], dim=1)
    return centroids


def _nearest_centroids(points: Tensor, centroids: Tensor, count: int) -> Tensor:
    """points [M, D] → ids of their ``count`` most similar centroids [M, count]."""
    return torch.cat(
        [
            (points[at : at + 8 * CHUNK] @ centroids.T).topk(count, dim=1).indices
            for at in range(0, len(points), 8 * CHUNK)
        ]
    )

"""Filtered link-prediction evaluation of a model: 1-vs-all scoring in memory-bounded chunks,
filtered realistic ranks (:mod:`vlkge.ranking`), metrics overall, per direction, per relation and
for seen / unseen entities.

Every query is scored against all candidates with one matrix product per chunk; the triples of a
chunk that share their query (anchor, relation) are scored once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vlkge.errors import InputError
from vlkge.graph import Graph
from vlkge.model import KGEModel
from vlkge.positions import positions_among
from vlkge.ranking import Filters, Ranked, candidate_pools, rank_filtered

log = logging.getLogger(__name__)

HITS_AT = (1, 3, 10)
DIRECTIONS = ("head", "tail")


@dataclass
class RankResult:
    """One realistic rank per query, with what the query was: all [Q]."""

    rank: Tensor  # float64, realistic (mean of optimistic and pessimistic)
    optimistic: Tensor  # int64
    pessimistic: Tensor  # int64
    relation: Tensor  # int64
    direction: Tensor  # int64: 0 head query, 1 tail query
    answer: Tensor  # int64: the true entity being ranked
    anchor: Tensor  # int64: the given entity of the query
    unrepresented: Tensor  # bool: touches an entity with no representation (a miss, worst rank)
    outside_pool: Tensor  # bool: the answer is outside the relation's candidate pool (a miss)


def metrics_of(rank: Tensor) -> dict[str, float]:
    """MRR and Hits@k of realistic ranks [Q]; empty → zeros with count 0."""
    if rank.numel() == 0:
        return {"mrr": 0.0, **{f"hits@{k}": 0.0 for k in HITS_AT}, "count": 0}
    out = {"mrr": float((1.0 / rank).mean())}
    for k in HITS_AT:
        out[f"hits@{k}"] = float((rank <= k).double().mean())
    out["count"] = int(rank.numel())
    return out


#: bytes per (query, candidate) pair while a chunk is ranked: float32 scores, one kernel temporary
#: (the l2 form) and the boolean comparison masks — what :func:`chunk_rows` budgets for
BYTES_PER_SCORE = 12
#: memory budget of one evaluation chunk (MiB) unless the caller gives one
MEMORY_MIB = 1024.0


def chunk_rows(num_candidates: int, batch_size: int, memory_mib: float = MEMORY_MIB) -> int:
    """Queries scored at once: at most ``batch_size``, and few enough that a chunk's [B, N]
    scores and temporaries stay within ``memory_mib``."""
    fit = int(memory_mib * 2**20) // max(1, num_candidates * BYTES_PER_SCORE)
    return max(1, min(batch_size, fit))


@torch.no_grad()
def rank_triples(
    model: KGEModel,
    triples: Tensor,
    filters: Filters,
    *,
    num_relations: int,
    directions: str = "both",
    pools: tuple[Tensor, Tensor] | None = None,
    batch_size: int = 1024,
    exclude: Tensor | None = None,
    memory_mib: float = MEMORY_MIB,
) -> RankResult:
    """Rank every query of ``triples`` [Q, 3] against all entities, filtered.

    ``pools`` (head mask [R, N], tail mask [R, N]) restricts candidates per relation; an answer
    outside its pool is a miss at the worst rank. ``exclude`` [N] bool: entities with no
    representation: never candidates, and a query touching one (as anchor or answer) is a miss at
    the worst rank. Queries are scored in chunks of at most ``batch_size`` that fit
    ``memory_mib`` (:func:`chunk_rows`); triples of a chunk that share their query (anchor,
    relation) are scored once.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    candidates = model.entity.all()
    keep_candidates = None if exclude is None or not exclude.any() else ~exclude.to(device)
    absent = torch.zeros(len(candidates), dtype=torch.bool) if exclude is None else exclude.cpu()
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    unrepresented = absent[h] | absent[t]
    parts: dict[str, list[Tensor]] = {
        k: [] for k in ("opt", "pess", "rel", "dir", "ans", "anc", "unr", "out")
    }
    wanted = ("tail",) if directions == "tail" else DIRECTIONS
    for direction in wanted:
        is_tail = direction == "tail"
        pool = None if pools is None else (pools[1] if is_tail else pools[0])
        anchor, answer = (h, t) if is_tail else (t, h)
        outside = torch.zeros_like(r, dtype=torch.bool) if pool is None else ~pool[r, answer]
        context = (model, filters, num_relations, candidates, keep_candidates)
        optimistic, pessimistic = _rank_direction(
            context, triples, is_tail, pool, unrepresented | outside, batch_size, memory_mib
        )
        found = {
            "opt": optimistic,
            "pess": pessimistic,
            "rel": r,
            "dir": torch.full_like(r, int(is_tail)),
            "ans": answer,
            "anc": anchor,
            "unr": unrepresented,
            "out": outside,
        }
        for key, value in found.items():
            parts[key].append(value)
    model.train(was_training)
    cat = {k: torch.cat(v) if v else torch.empty(0, dtype=torch.long) for k, v in parts.items()}
    return RankResult(
        rank=(cat["opt"].double() + cat["pess"].double()) / 2.0,
        optimistic=cat["opt"],
        pessimistic=cat["pess"],
        relation=cat["rel"],
        direction=cat["dir"],
        answer=cat["ans"],
        anchor=cat["anc"],
        unrepresented=cat["unr"].bool(),
        outside_pool=cat["out"].bool(),
    )


def _rank_direction(
    context: tuple[KGEModel, Filters, int, Tensor, Tensor | None],
    triples: Tensor,
    is_tail: bool,
    pool: Tensor | None,
    miss: Tensor,
    batch_size: int,
    memory_mib: float,
) -> tuple[Tensor, Tensor]:
    """(optimistic, pessimistic) ranks [Q] of ``triples`` in one direction, chunk by chunk and,
    with per-relation ``pool`` [R, N], relation by relation against its pool (``context``: model,
    filters, number of relations, candidate rows [N, w], entities that can be candidates)."""
    model, filters, num_relations, candidates, keep = context
    optimistic, pessimistic = torch.zeros_like(triples[:, 0]), torch.zeros_like(triples[:, 0])
    for which, among in _candidate_groups(triples[:, 1], pool):
        position = None  # entity id → its column among the pool's (-1: not in the pool)
        if among is not None:
            position = positions_among(among, len(candidates))
            among = among.to(candidates.device)
        width = len(candidates) if among is None else len(among)
        rows_per_chunk = chunk_rows(width, batch_size, memory_mib)
        for start in range(0, len(which), rows_per_chunk):
            at = which[start : start + rows_per_chunk]
            ranked = _rank_chunk(
                model,
                triples[at],
                is_tail,
                filters,
                num_relations,
                candidates,
                among=among,
                position=position,
                keep=keep,
                miss=miss[at],
            )
            optimistic[at], pessimistic[at] = ranked.optimistic.cpu(), ranked.pessimistic.cpu()
    return optimistic, pessimistic


def _candidate_groups(relations: Tensor, pool: Tensor | None) -> list[tuple[Tensor, Tensor | None]]:
    """Which triples are scored together, against which candidates: without pools all triples
    against every entity (``None``); with per-relation pools [R, N], each relation's triples
    against the entity ids of its pool only (the others never count: not scored at all)."""
    if pool is None:
        return [(torch.arange(len(relations)), None)]
    return [
        ((relations == rel).nonzero().squeeze(1), pool[rel].nonzero().squeeze(1))
        for rel in torch.unique(relations).tolist()
    ]


def _rank_chunk(
    model: KGEModel,
    chunk: Tensor,
    is_tail: bool,
    filters: Filters,
    num_relations: int,
    candidates: Tensor,
    *,
    among: Tensor | None,
    position: Tensor | None,
    keep: Tensor | None,
    miss: Tensor,
) -> Ranked:
    """Filtered ranks of a chunk [B, 3] of triples in one direction, against every entity or the
    entity ids ``among`` [P] (one relation's pool: its columns only; ``position`` [N] the column of
    each entity id, -1 outside the pool); ``keep`` [N] bool: entities with a representation (None:
    all); ``miss`` [B]: queries scored as misses."""
    device = candidates.device
    h, r, t = chunk[:, 0], chunk[:, 1], chunk[:, 2]
    anchor, answer = (h, t) if is_tail else (t, h)
    keys = anchor * num_relations + r
    scores = _query_scores(model, keys, num_relations, is_tail, candidates, among)
    rows, cols = (filters.tail if is_tail else filters.head).lookup(keys)
    if among is not None:  # columns are the pool's members: the filter and the answer as positions
        cols = position[cols]
        rows, cols = rows[cols >= 0], cols[cols >= 0]
        answer = position[answer]
        keep = None if keep is None else keep[among]
        if bool((answer < 0).any()):  # answers outside the pool (misses) point at a column of -inf
            scores = torch.cat([scores, scores.new_full((len(scores), 1), float("-inf"))], dim=1)
            answer = torch.where(answer < 0, len(among), answer)
            keep = torch.ones(len(among), dtype=torch.bool, device=device) if keep is None else keep
            keep = torch.cat([keep, keep.new_zeros(1)])
    allowed = None if keep is None else keep.expand(len(r), -1)
    return rank_filtered(
        scores.float(), answer.to(device), (rows.to(device), cols.to(device)), allowed, miss=miss.to(device)
    )


def _query_scores(
    model: KGEModel,
    keys: Tensor,
    num_relations: int,
    is_tail: bool,
    candidates: Tensor,
    among: Tensor | None = None,
) -> Tensor:
    """Scores [B, N] of a chunk's queries, keys [B] = anchor·R + relation, against every entity
    (or the entity ids ``among`` [P]: [B, P]); the triples that share their query are scored once."""
    device = candidates.device
    unique, which = torch.unique(keys, return_inverse=True)  # sorted
    shared = len(unique) < len(keys)
    ids = unique if shared else keys
    anchor, relation = (ids // num_relations).to(device), (ids % num_relations).to(device)
    subset = {} if among is None else {"among": among.to(device)}  # scorers without pools need not take it
    if is_tail:
        scores = model.score_tails(anchor, relation, candidates, **subset)
    else:
        scores = model.score_heads(relation, anchor, candidates, **subset)
    return scores[which.to(device)] if shared else scores  # one row per triple


def summarize(result: RankResult, relation_keys: list[str]) -> dict[str, Any]:
    """Overall, per-direction, per-relation (and per relation × direction) metrics."""
    out: dict[str, Any] = {"overall": metrics_of(result.rank)}
    for code, direction in enumerate(DIRECTIONS):
        selected = result.direction == code
        if selected.any():
            out[direction] = metrics_of(result.rank[selected])
    per_relation: dict[str, Any] = {}
    for rid, key in enumerate(relation_keys):
        selected = result.relation == rid
        if not selected.any():
            continue
        entry = metrics_of(result.rank[selected])
        for code, direction in enumerate(DIRECTIONS):
            both = selected & (result.direction == code)
            if both.any():
                entry[direction] = metrics_of(result.rank[both])
        per_relation[key] = entry
    out["per_relation"] = per_relation
    return out


def evaluation_triples(graph: Graph, split: str) -> Tensor:
    """The split's triples minus those of the protocol's excluded relations: [Q, 3]."""
    if split not in graph.triples:
        raise InputError(f"unknown split {split!r}", hint="use train, valid or test")
    triples = graph.split(split)
    excluded = graph.protocol.get("excluded_relations") or []
    if excluded:
        ids = torch.tensor([graph.relation_id(k) for k in excluded])
        triples = triples[~torch.isin(triples[:, 1], ids)]
    return triples


#: what a query touching an entity with no representation becomes (``evaluate.missing``)
MISSING_MODES = ("worst", "drop", "error")


def evaluate(
    model: KGEModel,
    graph: Graph,
    split: str = "test",
    *,
    protocol: str = "correct",
    directions: str | None = None,
    candidate_pools_mode: str | None = None,
    batch_size: int = 1024,
    filters: Filters | None = None,
    memory_mib: float = MEMORY_MIB,
    missing: str = "worst",
) -> dict[str, Any]:
    """Filtered evaluation of ``model`` on ``graph``'s ``split``; returns the metrics dict.

    ``filters``: the known triples to filter (default: all splits; model selection passes train
    and valid only). A query touching an entity with no representation is, by ``missing``: a miss
    at its worst possible rank, counted (``worst``), left out with its count in the table
    (``drop``, opt-in), or refused (``error``); so is an answer outside its relation's candidate
    pool (always a counted miss). A split with no query the model can score is an InputError.
    Queries are scored ``batch_size`` at a time, fewer when a chunk's scores would exceed
    ``memory_mib`` (large candidate sets)."""
    if missing not in MISSING_MODES:
        raise ValueError(f"unknown missing mode {missing!r}")
    proto = graph.protocol
    directions = directions or proto["directions"]
    pools_mode = candidate_pools_mode or proto["candidate_pools"]
    if filters is None:
        filters = Filters.build(graph.all_triples(), graph.num_relations, protocol)
    pools = candidate_pools(graph) if pools_mode == "per_relation" else None
    exclude = _without_representation(model)
    triples, dropped = _scorable(evaluation_triples(graph, split), exclude, split, missing)
    result = rank_triples(
        model,
        triples,
        filters,
        num_relations=graph.num_relations,
        directions=directions,
        pools=pools,
        batch_size=batch_size,
        exclude=exclude,
        memory_mib=memory_mib,
    )
    metrics = summarize(result, graph.relation_keys)
    metrics["entities"] = seen_unseen(result, graph)
    per_triple = 1 if directions == "tail" else 2
    metrics["setup"] = {
        "split": split,
        "protocol": protocol,
        "directions": directions,
        "candidate_pools": pools_mode,
        "ties": "realistic (mean of optimistic and pessimistic rank)",
        "excluded_relations": list(proto.get("excluded_relations") or []),
        "excluded_entities": int(exclude.sum()),
        "missing": missing,
        "unrepresented_queries": int(result.unrepresented.sum()) + dropped * per_triple,
        "dropped_queries": dropped * per_triple,
        "outside_pool_queries": int((result.outside_pool & ~result.unrepresented).sum()),
    }
    return metrics


def _scorable(triples: Tensor, exclude: Tensor, split: str, missing: str) -> tuple[Tensor, int]:
    """The split's triples to rank and how many were dropped (``missing: drop``); refuses a split
    whose every query touches an entity with no representation, or that has none at all."""
    touches = exclude[triples[:, 0]] | exclude[triples[:, 2]]
    count = int(touches.sum())
    if count == len(triples):
        reason = (
            "has no triples to evaluate"
            if count == 0
            else f"has no query that can be scored: all {count} triple(s) touch unrepresented entities"
        )
        raise InputError(
            f"the {split} split {reason}",
            hint="evaluate another split, or give those entities a modality (features) or structure",
        )
    if not count:
        return triples, 0
    if missing == "error":
        raise InputError(
            f"{count} {split} triple(s) touch entities with no modality and no structure",
            hint="set evaluate.missing: worst (score them as misses) or drop (leave them out, counted)",
        )
    if missing == "drop":
        log.warning("%d %s triple(s) touch entities with no representation: dropped (opt-in)", count, split)
        return triples[~touches], count
    log.warning(
        "%d %s triple(s) touch entities with no representation: scored as misses at the worst rank",
        count,
        split,
    )
    return triples, 0


def _without_representation(model: KGEModel) -> Tensor:
    """[N] bool of entities the model cannot represent (no modality, no structure)."""
    return ~model.entity.present.cpu()


def seen_unseen(result: RankResult, graph: Graph) -> dict[str, Any]:
    """Metrics of queries whose two entities both occur in train (``seen``) and of those that
    touch an entity absent from train (``unseen``: inductive entities), with direction splits."""
    seen = graph.in_train()
    unseen_query = ~(seen[result.anchor] & seen[result.answer])
    out: dict[str, Any] = {"unseen_entities": int((~seen).sum())}
    for name, selected in (("seen", ~unseen_query), ("unseen", unseen_query)):
        entry = metrics_of(result.rank[selected])
        # unseen entity as the answer (predict it) or as the anchor (predict from it)
        if name == "unseen":
            entry["answer_unseen"] = metrics_of(result.rank[~seen[result.answer]])
            entry["anchor_unseen"] = metrics_of(result.rank[~seen[result.anchor]])
        out[name] = entry
    return out

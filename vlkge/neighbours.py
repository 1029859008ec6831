"""The features-only nearest-neighbour baseline: what a feature store gives with no training at all.

A tail query (h, r, ?) ranks every candidate t by sim(h, t), a head query (?, r, t) every candidate
h by sim(h, t): the relation is ignored, the entity-to-entity similarity is all there is. With one
modality, sim is the cosine of the two entities' feature vectors; with several (``both``: text and
image), the mean of the cosines over the modalities **both** entities have. Two fixed scores stand
outside the cosine range [-1, 1]:

- :data:`NO_SHARED` (-2): the two entities share no modality (one has only an image, the other
  only text; or either has none of the chosen modalities). Such candidates tie with each other,
  below every candidate that shares one; an anchor with none of the modalities ties all its
  candidates, so its answer gets the mean rank (realistic ties).
- :data:`SELF` (-3): the anchor itself. An entity is not its own neighbour: its similarity to
  itself (1, always first) is not used and it ranks below every other candidate. A self-loop
  answer (h, r, h) therefore always gets the worst rank of its query: the baseline cannot predict
  self-loops.

With ``mentions`` (an untrained reference for models with text mentions, ``model.mentions``):
sim(h, t) + ½·M[h, t] + ½·M[t, h], where M[i, j] says that i's text names j
(:mod:`vlkge.features.mentions`); ½ is where a model's mention weights start.

The ranking is the evaluation's own (:func:`vlkge.evaluation.evaluate`, hence
:func:`vlkge.ranking.rank_filtered`): the same split, excluded relations, directions, per-direction
filters, candidate pools, realistic ties, seen / unseen entities and metrics JSON. The scorer plugs
in where a model would; the candidates and queries that count are those of ``present`` (all
entities, or a run's: :func:`beside_model` ranks exactly the queries the run's model is ranked on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkge.errors import ConfigError, InputError
from vlkge.evaluation import MEMORY_MIB, evaluate
from vlkge.features.inputs import check_feature_table, graph_mentions
from vlkge.features.mentions import Mentions
from vlkge.features.store import MANIFEST, load_features
from vlkge.graph import Graph
from vlkge.modalities import FEATURE_MODALITIES, IMAGE, TEXT
from vlkge.representations.base import EntityRepresentation

#: score of a candidate that shares no modality with the anchor (below any cosine)
NO_SHARED = -2.0
#: score of the anchor itself (below everything: an entity is not its own neighbour)
SELF = -3.0
#: ``--modalities`` choices → the store's modality directories averaged over
MODALITY_SETS: dict[str, tuple[str, ...]] = {TEXT: (TEXT,), IMAGE: (IMAGE,), "both": (IMAGE, TEXT)}
_SELF_RULE = "the anchor is never its own neighbour: it ranks last, so a self-loop answer gets the worst rank"
_NO_SHARED_RULE = "pairs sharing no modality score below every cosine (ties among them)"
#: suffix of a baseline set with the text-mention term
WITH_MENTIONS = "+mentions"
#: weight of each mention direction in the ``mentions`` variant (a model's starting weight)
MENTION_WEIGHT = 0.5


class NeighbourFeatures(EntityRepresentation):
    """The entities' L2-normalised features side by side, ``all()`` → [N, D] (zero blocks where a
    modality is absent), with ``mask`` [N, M] float (1 where the entity has modality m) and the
    ``present`` [N] entities that count as queries and candidates."""

    def __init__(self, blocks: list[Tensor], masks: list[Tensor], present: Tensor | None = None) -> None:
        super().__init__()
        self.num_entities = int(blocks[0].shape[0])
        parts = [F.normalize(b.float(), dim=1) * m.unsqueeze(1) for b, m in zip(blocks, masks, strict=True)]
        vectors = torch.cat(parts, dim=1)
        # a frozen parameter, not a buffer: the evaluation finds a scorer's device from its parameters
        self.vectors = nn.Parameter(vectors, requires_grad=False)
        self.register_buffer("mask", torch.stack(masks, dim=1).float())
        keep = torch.ones(self.num_entities, dtype=torch.bool) if present is None else present.bool()
        self.register_buffer("represented", keep.clone())

    def forward(self, ids: Tensor) -> Tensor:
        return self.vectors[ids]

    def all(self) -> Tensor:
        return self.vectors

    @property
    def present(self) -> Tensor:
        return self.represented


class NeighbourScorer(nn.Module):
    """Scores every candidate by its similarity to the query's given entity (module docstring),
    in the 1-vs-all form the evaluation calls: ``score_tails(h [B], r [B])`` → [B, N] and
    ``score_heads(r [B], t [B])`` → [B, N]; the relation is ignored. ``mentions``: add the
    text-mention term (module docstring)."""

    def __init__(self, entity: NeighbourFeatures, mentions: Mentions | None = None) -> None:
        super().__init__()
        self.entity = entity
        self.mentions = mentions

    def similarity(self, anchors: Tensor, among: Tensor | None = None) -> Tensor:
        """anchors [B] → [B, N] (with the candidates ``among`` [P] only: [B, P]): the mean cosine
        over shared modalities, :data:`NO_SHARED` where none is shared, :data:`SELF` at the anchor
        itself."""
        vectors, mask = self.entity.vectors, self.entity.mask
        if among is not None:
            vectors, mask = vectors[among], mask[among]
        scores = self.entity.vectors[anchors] @ vectors.T  # absent blocks are zero: shared sum
        shared = self.entity.mask[anchors] @ mask.T  # [B, N] modalities both have
        none = shared == 0
        scores.div_(shared.clamp_(min=1.0))
        if self.mentions is not None:
            named = self.mentions.names(anchors, among) + self.mentions.named_by(anchors, among)
            scores.add_(named.to(scores.device), alpha=MENTION_WEIGHT)
        scores.masked_fill_(none, NO_SHARED)
        if among is None:
            scores[torch.arange(len(anchors), device=scores.device), anchors] = SELF
        else:
            scores.masked_fill_(anchors.unsqueeze(1) == among.unsqueeze(0), SELF)
        return scores

    def score_tails(
        self, h: Tensor, r: Tensor, candidates: Tensor | None = None, among: Tensor | None = None
    ) -> Tensor:
        return self.similarity(h, among)

    def score_heads(
        self, r: Tensor, t: Tensor, candidates: Tensor | None = None, among: Tensor | None = None
    ) -> Tensor:
        return self.similarity(t, among)


def store_modalities(store_dir: Path) -> tuple[str, ...]:
    """The entity modalities (image, text) a store holds."""
    return tuple(m for m in (IMAGE, TEXT) if (Path(store_dir) / m / MANIFEST).is_file())


def modality_set(store_dir: Path, modalities: str | None) -> str:
    """``modalities`` checked against the store; None: ``both`` where it has image and text, else
    the one it has."""
    have = store_modalities(store_dir)
    if not have:
        raise InputError("no image or text features in this store", path=store_dir, hint="run `vlkge encode`")
    if modalities is None:
        return "both" if len(have) == 2 else have[0]
    if modalities not in MODALITY_SETS:
        raise ConfigError(
            f"unknown modalities {modalities!r}", key="--modalities", hint=", ".join(MODALITY_SETS)
        )
    missing = [m for m in MODALITY_SETS[modalities] if m not in have]
    if missing:
        raise InputError(
            f"the store has no {' or '.join(missing)} features",
            path=store_dir,
            hint=f"choose among {', '.join(s for s, ms in MODALITY_SETS.items() if set(ms) <= set(have))}",
        )
    return modalities


def load_scorer(
    graph: Graph,
    store_dir: str | Path,
    modalities: str,
    present: Tensor | None = None,
    mentions: bool = False,
) -> NeighbourScorer:
    """The scorer over ``store_dir``'s ``modalities`` (a :data:`MODALITY_SETS` key), checked
    against ``graph``; ``present`` [N] bool: the entities that count (None: all); ``mentions``:
    with the graph's text mentions."""
    store_dir = Path(store_dir)
    blocks, masks = [], []
    for modality in MODALITY_SETS[modality_set(store_dir, modalities)]:
        mod_dir = store_dir / modality
        table = load_features(mod_dir, graph=graph)
        check_feature_table(table, graph, mod_dir)
        matrix, mask = table.dense(graph.num_entities)
        blocks.append(matrix)
        masks.append(mask)
    named = graph_mentions(graph) if mentions else None
    return NeighbourScorer(NeighbourFeatures(blocks, masks, present), named)


def neighbour_evaluation(
    graph: Graph,
    store_dir: str | Path,
    modalities: str | None = None,
    split: str = "test",
    *,
    present: Tensor | None = None,
    device: str | torch.device = "cpu",
    memory_mib: float = MEMORY_MIB,
    mentions: bool = False,
    **protocol: Any,
) -> dict[str, Any]:
    """The baseline's metrics on ``split``, in the evaluation's JSON format (``protocol``: the
    keyword arguments of :func:`vlkge.evaluation.evaluate`: protocol, directions,
    candidate_pools_mode, batch_size); ``mentions``: the variant with text mentions."""
    chosen = modality_set(Path(store_dir), modalities)
    scorer = load_scorer(graph, store_dir, chosen, present, mentions).to(device)
    metrics = evaluate(scorer, graph, split, memory_mib=memory_mib, **protocol)  # in a model's place
    metrics["setup"].update(
        {
            "method": "neighbours",
            "features": str(store_dir),
            "modalities": chosen,
            "similarity": "cosine; several modalities: mean over those both entities have",
            "no_shared_modality": _NO_SHARED_RULE,
            "self": _SELF_RULE,
            "mentions": MENTION_WEIGHT if mentions else None,
        }
    )
    return metrics


def baseline_sets(feature_modalities: list[str] | tuple[str, ...], mentions: bool = False) -> list[str]:
    """The :data:`MODALITY_SETS` keys a run reading these model modalities (visual, textual) is
    compared with: each one alone, and ``both`` when it reads both; a run with text mentions also
    with each set holding text plus the mention term (``<set>+mentions``)."""
    store = {FEATURE_MODALITIES[m] for m in feature_modalities if m in FEATURE_MODALITIES}
    sets = [name for name, needs in MODALITY_SETS.items() if set(needs) <= store]
    if mentions:
        sets += [name + WITH_MENTIONS for name in sets if TEXT in MODALITY_SETS[name]]
    return sets


def group_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``overall``, ``seen`` and ``unseen`` entity metrics of an evaluation result (those with
    queries)."""
    entities = metrics.get("entities", {})
    found = {"overall": metrics["overall"], "seen": entities.get("seen"), "unseen": entities.get("unseen")}
    return {k: v for k, v in found.items() if v and v.get("count")}


def beside_model(
    model_metrics: dict[str, Any],
    graph: Graph,
    store_dir: str | Path,
    sets: list[str],
    *,
    present: Tensor,
    device: str | torch.device = "cpu",
    results: dict[str, Any] | None = None,
    **protocol: Any,
) -> dict[str, Any]:
    """The ``neighbours`` block of a run's evaluation: the baseline for each of ``sets`` on the
    model's split, protocol and represented entities (so on exactly its queries), and per group the
    model's MRR ÷ the best baseline's. ``results``: the baseline already computed on those same
    queries (another seed of the same group), reused as it is."""
    split = model_metrics["setup"]["split"]
    if results is None:
        results = {
            name: neighbour_evaluation(
                graph,
                store_dir,
                name.removesuffix(WITH_MENTIONS),
                split,
                present=present,
                device=device,
                mentions=name.endswith(WITH_MENTIONS),
                **protocol,
            )
            for name in sets
        }
    ratio: dict[str, Any] = {}
    for group, mine in group_metrics(model_metrics).items():
        scores = {name: group_metrics(r).get(group, {}).get("mrr", 0.0) for name, r in results.items()}
        best = max(scores, key=lambda name: scores[name])
        value = mine["mrr"] / scores[best] if scores[best] > 0 else None
        ratio[group] = {
            "baseline": best,
            "baseline_mrr": scores[best],
            "model_mrr": mine["mrr"],
            "ratio": value,
        }
    return {"store": str(store_dir), "results": results, "model_over_best": ratio}

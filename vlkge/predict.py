"""Link prediction for a new entity (not in the graph) from its image and/or text.

The query is encoded with the run's own encoder (the one that made its feature store, checked by
weights hash: :func:`vlkge.runs.run_encoder`), turned into an entity representation with the
run's projections and fusion (no structural part), and scored against every entity of the graph:

- tails ``(new, r, ?)`` or heads ``(?, r, new)`` with ``--head``, top-k with scores;
- the nearest entities by cosine similarity of the representations.

A model with a feature prior (:mod:`vlkge.prior`) scores the new entity as any entity without
structure: backbone + the prior's features-only view, exactly over all candidates; its nearest
entities are those of highest feature similarity.

Candidate search is exact (one matrix product) for small graphs and goes through a faiss index
(inner product or L2; faiss-gpu when installed and on GPU) for large ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vlkge.encoders import Encoder
from vlkge.encoders.images import load_image
from vlkge.errors import ConfigError, InputError
from vlkge.graph import Graph
from vlkge.model import KGEModel
from vlkge.prior import HEAD, TAIL

#: graphs with at least this many candidate entities are searched through faiss under ``auto``
FAISS_MIN_ENTITIES = 100_000
SEARCH_MODES = ("auto", "exact", "faiss")


class CandidateIndex:
    """Top-k search of queries [B, w] over a candidate table [N, w] with an interaction's kernel.

    ``dot`` → inner product; ``l2`` → ``margin − ‖q − e‖₂``; ``l1`` is always exact. ``allowed``
    [N] bool drops candidates (entities without a representation).
    """

    def __init__(
        self,
        table: Tensor,
        kernel: str,
        *,
        margin: float = 0.0,
        allowed: Tensor | None = None,
        mode: str = "auto",
    ) -> None:
        if mode not in SEARCH_MODES:
            raise ConfigError(f"unknown search {mode!r}", key="predict.search", hint=", ".join(SEARCH_MODES))
        self.kernel, self.margin = kernel, margin
        self.ids = torch.arange(table.shape[0]) if allowed is None else allowed.nonzero().flatten()
        self.table = table.detach().float().cpu()[self.ids].contiguous()
        if mode == "auto":
            mode = "faiss" if len(self.ids) >= FAISS_MIN_ENTITIES and kernel != "l1" else "exact"
        if mode == "faiss" and kernel == "l1":
            raise ConfigError("faiss search has no L1 kernel", key="predict.search", hint="use exact")
        self.mode = mode
        self.index = self._faiss_index() if mode == "faiss" else None

    def _faiss_index(self) -> Any:
        try:
            import faiss
        except ImportError:
            raise ConfigError(
                "faiss is not installed", key="predict.search", hint="pip install faiss-cpu, or use exact"
            ) from None
        width = self.table.shape[1]
        index = faiss.IndexFlatIP(width) if self.kernel == "dot" else faiss.IndexFlatL2(width)
        if hasattr(faiss, "StandardGpuResources") and torch.cuda.is_available():
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        index.add(np.ascontiguousarray(self.table.numpy(), dtype=np.float32))
        return index

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """queries [B, w] → (scores [B, k'], entity ids [B, k']), best first; k' = min(k, N)."""
        k = min(k, len(self.ids))
        q = queries.detach().float().cpu()
        if self.index is not None:
            found, pos = self.index.search(np.ascontiguousarray(q.numpy(), dtype=np.float32), k)
            scores = torch.from_numpy(found)
            if self.kernel != "dot":  # faiss returns squared L2 distances
                scores = self.margin - scores.clamp_min(0).sqrt()
            return scores, self.ids[torch.from_numpy(pos).long()]
        if self.kernel == "dot":
            all_scores = q @ self.table.T
        else:
            p = 2.0 if self.kernel == "l2" else 1.0
            all_scores = self.margin - torch.cdist(q, self.table, p=p)
        scores, pos = all_scores.topk(k, dim=1)
        return scores, self.ids[pos]


@dataclass
class Prediction:
    """What ``vlkge predict`` shows: ranked answers and nearest entities (keys, names, scores)."""

    relation: str
    direction: str  # "tail" or "head"
    answers: list[dict[str, Any]]
    nearest: list[dict[str, Any]]
    search: str
    nearest_by: str = "cosine of representations"


def _rows(graph: Graph, ids: Tensor, scores: Tensor) -> list[dict[str, Any]]:
    names = graph.entities["name"].to_list()
    keys = graph.entity_keys
    return [
        {"rank": i + 1, "entity_id": int(e), "key": keys[e], "name": names[e], "score": float(s)}
        for i, (e, s) in enumerate(zip(ids.tolist(), scores.tolist(), strict=True))
    ]


def encode_query(
    encoder: Encoder, image: str | Path | None, text: str | None, record: dict[str, Any]
) -> dict[str, Tensor]:
    """Encode the query with ``encoder`` into {modality: [1, d_m]}, normalised as the store was.

    ``record``: the run's feature record (per modality: dim, encoder, normalisation).
    """
    out: dict[str, Tensor] = {}
    for modality, given in (("visual", image), ("textual", text)):
        if given is None:
            continue
        rec = record.get(modality)
        if rec is None:
            raise InputError(
                f"the run has no {modality} modality, but the query gives "
                f"{'an image' if modality == 'visual' else 'a text'}",
                hint=f"the run uses: {', '.join(record) or 'no feature modality'}",
            )
        if modality == "visual":
            path = Path(given)
            pixels, reason = load_image(path, encoder.image_transform)
            if pixels is None:
                raise InputError(
                    f"cannot read the query image: {reason}",
                    path=path,
                    hint="give a readable image file (JPEG, PNG, …) with --image",
                )
            vector = encoder.encode_images(pixels.unsqueeze(0))
        else:
            if not str(given).strip():
                raise InputError("the query text is empty", hint="pass --text with some words")
            vector = encoder.encode_texts([str(given)])
        if vector.shape[1] != rec["dim"]:
            raise InputError(
                f"the encoder gives {vector.shape[1]}-d {modality} vectors, the run's store {rec['dim']}-d",
                hint="use the encoder settings the store was made with",
            )
        if rec.get("normalisation") == "l2":
            vector = F.normalize(vector, dim=1)
        out[modality] = vector
    if not out:
        raise InputError("nothing to predict from", hint="give --image FILE and/or --text '...'")
    return out


def predict(
    model: KGEModel,
    graph: Graph,
    query: dict[str, Tensor],
    relation: str,
    *,
    k: int = 5,
    head: bool = False,
    search: str = "auto",
    text: str | None = None,
    name: str | None = None,
) -> Prediction:
    """Top-k answers for ``(new, relation, ?)`` (or ``(?, relation, new)`` with ``head``) and the
    k nearest entities, for a new entity given by its encoded ``query`` features (and its raw
    ``text`` and ``name``, for a prior with text mentions)."""
    reps = model.entity
    rel = torch.tensor([graph.relation_id(relation)])
    model.eval()
    with torch.no_grad():
        if model.prior is not None:
            mentions = new_mentions(model, graph, text, name)
            return _predict_with_prior(model, graph, query, relation, k=k, head=head, mentions=mentions)
        device = next(model.parameters()).device
        new = reps.new_entity(query)  # [1, w]
        table = reps.all()
        r = model.relation(rel.to(device))
        inter = model.interaction
        q = inter.head_query(r, new) if head else inter.tail_query(new, r)
        answers = CandidateIndex(
            inter.entity_view(table), inter.kernel, margin=inter.margin, allowed=reps.present, mode=search
        )
        scores, ids = answers.search(q, k)
        near = CandidateIndex(F.normalize(table, dim=1), "dot", allowed=reps.present, mode=search)
        sims, near_ids = near.search(F.normalize(new, dim=1), k)
    return Prediction(
        relation=relation,
        direction="head" if head else "tail",
        answers=_rows(graph, ids[0], scores[0]),
        nearest=_rows(graph, near_ids[0], sims[0]),
        search=answers.mode,
    )


def new_mentions(
    model: KGEModel, graph: Graph, text: str | None, name: str | None
) -> tuple[Tensor, Tensor] | None:
    """A new entity's text-mention rows [1, N] (the graph's entities its text names, those whose
    texts name it) when the model's prior reads mentions, else None."""
    mentions = model.prior.mentions if model.prior is not None else None
    if mentions is None:
        return None
    names, texts = graph.entities["name"].to_list(), graph.entities["text"].to_list()
    device = next(model.parameters()).device
    return tuple(row.unsqueeze(0).to(device) for row in mentions.of_new(text, name, names, texts))


def _predict_with_prior(
    model: KGEModel,
    graph: Graph,
    query: dict[str, Tensor],
    relation: str,
    *,
    k: int,
    head: bool,
    mentions: tuple[Tensor, Tensor] | None = None,
) -> Prediction:
    """A model with a feature prior scores the new entity as it scores any entity without
    structure (backbone + the prior's features-only view), exactly over all candidates (one row
    of N scores; an index cannot add the prior); nearest entities by feature similarity."""
    reps = model.entity
    device = next(model.parameters()).device
    new, table = reps.new_entity(query), reps.all()
    r = torch.tensor([graph.relation_id(relation)], device=device)
    side = HEAD if head else TAIL
    if head:
        scores = model.interaction.score_heads(model.relation(r), new, table)
    else:
        scores = model.interaction.score_tails(new, model.relation(r), table)
    scores = scores + model.prior.for_new(reps, query, r, side, mentions)
    absent = ~reps.present.to(device)
    k = min(k, int((~absent).sum()))
    top, ids = scores.masked_fill(absent, float("-inf")).topk(k, dim=1)
    near, near_ids = reps.similarity_to_features(query).masked_fill(absent, float("-inf")).topk(k, dim=1)
    return Prediction(
        relation=relation,
        direction="head" if head else "tail",
        answers=_rows(graph, ids[0].cpu(), top[0].cpu()),
        nearest=_rows(graph, near_ids[0].cpu(), near[0].cpu()),
        search="exact",
        nearest_by="feature similarity",
    )


def format_prediction(pred: Prediction) -> str:
    what = "heads (?, {r}, new)" if pred.direction == "head" else "tails (new, {r}, ?)"
    lines = [f"top {len(pred.answers)} {what.format(r=pred.relation)}  [search: {pred.search}]"]
    lines += [f"  {a['rank']:3d}. {a['score']:10.4f}  {a['key']}  {a['name']}" for a in pred.answers]
    lines.append(f"nearest entities ({pred.nearest_by})")
    lines += [f"  {a['rank']:3d}. {a['score']:10.4f}  {a['key']}  {a['name']}" for a in pred.nearest]
    return "\n".join(lines)

"""Zero-shot link prediction with a shared-space encoder (CLIP-like): no training at all.

A tail query (h, r, ?) is answered by the similarity between the head's own embedding (its image,
else its text, else its name) and each candidate tail's name inside the relation's prompt,
e.g. ``"This painting was created by {}."``. Prompts come from ``meta.json`` (``prompts``:
relation key → template, written by the dataset adapter), else ``--prompts FILE``, else
:data:`DEFAULT_PROMPT` over the relation's key in words.

Same queries, candidate pools, filters and tie handling as the KGE evaluation
(:mod:`vlkge.evaluation`): excluded relations are skipped, per-relation pools restrict the
candidates, the other true tails are filtered, ranks are realistic. Tail queries only (the prompt
describes the tail); a graph whose protocol asks for both directions is ranked on tails.
"""

from __future__ import annotations

from collections.abc import Callable
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
from vlkge.evaluation import RankResult, evaluation_triples, summarize
from vlkge.features.plan import relation_words
from vlkge.graph import Graph
from vlkge.positions import positions_among
from vlkge.ranking import Filters, candidate_pools, rank_filtered

DEFAULT_PROMPT = "A picture of something that {relation}: {name}."
QUERY_MODES = ("auto", "image", "text")


@dataclass
class ZeroShotResult:
    """Metrics (the evaluation's format), the ranks, and the top-k tails per query."""

    metrics: dict[str, Any]
    ranks: RankResult
    topk: Tensor  # [Q, k] entity ids, best first
    topk_scores: Tensor  # [Q, k]
    queries: Tensor  # [Q, 3] the ranked triples


def prompt_for(relation: str, prompts: dict[str, str]) -> str:
    """The template of ``relation`` with ``{}`` (or ``{name}``) for the candidate's name."""
    template = prompts.get(relation)
    if template is None:
        return DEFAULT_PROMPT.replace("{relation}", relation_words(relation)).replace("{name}", "{}")
    return template.replace("{name}", "{}")


def _normalise(x: Tensor) -> Tensor:
    return F.normalize(x.float(), dim=-1)


def encode_texts(encoder: Encoder, texts: list[str], batch_size: int) -> Tensor:
    """[len(texts), d] L2-normalised."""
    out = []
    with encoder.inference():
        for start in range(0, len(texts), batch_size):
            out.append(encoder.encode_texts(texts[start : start + batch_size]).float())
    return _normalise(torch.cat(out)) if out else torch.empty(0)


def query_embeddings(
    graph: Graph, entity_ids: Tensor, encoder: Encoder, mode: str, batch_size: int
) -> tuple[Tensor, dict[str, int]]:
    """Embeddings [len(entity_ids), d] of the query entities and how many came from which
    modality: image (mean of an entity's images), text, or the name as a last resort."""
    if mode not in QUERY_MODES:
        raise ConfigError(f"unknown query mode {mode!r}", key="zeroshot.query", hint="auto, image or text")
    ids = entity_ids.tolist()
    rows = graph.entities[ids]
    names, texts, images = rows["name"].to_list(), rows["text"].to_list(), rows["images"].to_list()
    base = graph.root.parent
    vectors: list[Tensor | None] = [None] * len(ids)
    counts = {"image": 0, "text": 0, "name": 0}
    if mode in ("auto", "image") and encoder.image_transform is not None:
        with encoder.inference():
            for i, paths in enumerate(images):
                pixels = [load_image(base / p, encoder.image_transform)[0] for p in paths or []]
                pixels = [p for p in pixels if p is not None]
                if pixels:
                    batch = encoder.to_device(torch.stack(pixels))
                    vectors[i] = _normalise(_normalise(encoder.encode_images(batch)).mean(0))
                    counts["image"] += 1
    pending = [i for i, v in enumerate(vectors) if v is None]
    strings = []
    for i in pending:
        use_text = texts[i] is not None and texts[i].strip() != ""
        strings.append(texts[i] if use_text else names[i])
        counts["text" if use_text else "name"] += 1
    encoded = encode_texts(encoder, strings, batch_size)
    for row, i in enumerate(pending):
        vectors[i] = encoded[row]
    return torch.stack([v for v in vectors if v is not None]), counts


def zero_shot(
    graph: Graph,
    encoder: Encoder,
    split: str = "test",
    *,
    prompts: dict[str, str] | None = None,
    query: str = "auto",
    candidate_pools_mode: str | None = None,
    batch_size: int = 256,
    top_k: int = 5,
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
) -> ZeroShotResult:
    """Rank tails of ``split``'s triples by prompt similarity; returns metrics and top-k.

    ``limit`` ranks only the first ``limit`` queries (a quick look at a big graph).
    """
    prompts = {**(graph.meta.get("prompts") or {}), **(prompts or {})}
    pools_mode = candidate_pools_mode or graph.protocol["candidate_pools"]
    triples = evaluation_triples(graph, split)
    if limit is not None:
        triples = triples[:limit]
    heads = torch.unique(triples[:, 0])
    head_vecs, counts = query_embeddings(graph, heads, encoder, query, batch_size)
    if log is not None:
        log(f"queries from image {counts['image']:,}, text {counts['text']:,}, name {counts['name']:,}")
    head_row = positions_among(heads, graph.num_entities)
    ranker = _Ranker(graph, encoder, prompts, pools_mode, batch_size, top_k)
    for rel in torch.unique(triples[:, 1]).tolist():
        chunk = triples[triples[:, 1] == rel]
        ranker.rank_relation(chunk, rel, head_vecs[head_row[chunk[:, 0]]])
    ranks, top, top_scores, q = ranker.results()
    metrics = summarize(ranks, graph.relation_keys)
    metrics["setup"] = {
        "split": split,
        "method": "zero-shot",
        "protocol": "correct",  # the filter of the KGE evaluation (per direction)
        "encoder": encoder.info.as_dict(),
        "query": query,
        "query_modalities": counts,
        "directions": "tail",
        "candidate_pools": pools_mode,
        "ties": "realistic (mean of optimistic and pessimistic rank)",
        "excluded_relations": list(graph.protocol.get("excluded_relations") or []),
        "outside_pool_queries": int(ranks.outside_pool.sum()),
        "prompts": {
            graph.relation_keys[r]: prompt_for(graph.relation_keys[r], prompts)
            for r in np.unique(q[:, 1].numpy()).tolist()
        },
    }
    return ZeroShotResult(metrics, ranks, top, top_scores, q)


class _Ranker:
    """Ranks the tail queries of one relation at a time against the relation's prompted candidate
    names, with the KGE evaluation's filter and pools; collects ranks and the unfiltered top-k."""

    def __init__(
        self,
        graph: Graph,
        encoder: Encoder,
        prompts: dict[str, str],
        pools_mode: str,
        batch_size: int,
        top_k: int,
    ) -> None:
        self.graph, self.encoder, self.prompts = graph, encoder, prompts
        self.batch_size, self.top_k = batch_size, top_k
        self.filters = Filters.build(graph.all_triples(), graph.num_relations, "correct")
        self.pools = candidate_pools(graph)[1] if pools_mode == "per_relation" else None
        self.names = graph.entities["name"].to_list()
        self.parts: dict[str, list[Tensor]] = {k: [] for k in ("opt", "pess", "top", "tops", "q", "out")}

    def rank_relation(self, triples: Tensor, rel: int, head_vecs: Tensor) -> None:
        """triples [Q, 3] of relation ``rel`` and their heads' embeddings [Q, d]."""
        n = self.graph.num_entities
        cand = torch.nonzero(self.pools[rel]).squeeze(1) if self.pools is not None else torch.arange(n)
        template = prompt_for(self.graph.relation_keys[rel], self.prompts)
        names = [template.format(self.names[c]) for c in cand.tolist()]
        cand_vecs = encode_texts(self.encoder, names, self.batch_size)
        allowed = torch.zeros(n, dtype=torch.bool)
        allowed[cand] = True
        for start in range(0, len(triples), self.batch_size):
            chunk = triples[start : start + self.batch_size]
            h, r, t = chunk[:, 0], chunk[:, 1], chunk[:, 2]
            sims = head_vecs[start : start + self.batch_size] @ cand_vecs.T  # [B, |pool|]
            scores = torch.zeros(len(chunk), n)
            scores[:, cand] = sims
            filtered = self.filters.tail.lookup(h * self.graph.num_relations + r)
            outside = ~allowed[t]  # an answer outside the pool: a counted miss, as in evaluation
            ranked = rank_filtered(scores, t, filtered, allowed.expand(len(chunk), -1), miss=outside)
            best = torch.topk(sims, min(self.top_k, len(cand)), dim=1)
            for key, value in zip(
                ("opt", "pess", "top", "tops", "q", "out"),
                (ranked.optimistic, ranked.pessimistic, cand[best.indices], best.values, chunk, outside),
                strict=True,
            ):
                self.parts[key].append(value)

    def results(self) -> tuple[RankResult, Tensor, Tensor, Tensor]:
        """(ranks, top-k ids [Q, k], their scores [Q, k], the ranked triples [Q, 3])."""
        parts = self.parts
        if not parts["q"]:
            empty = torch.empty(0, dtype=torch.long)
            q = torch.empty(0, 3, dtype=torch.long)
            top, tops = torch.empty(0, self.top_k, dtype=torch.long), torch.empty(0, self.top_k)
            opt = pess = empty
            out = torch.empty(0, dtype=torch.bool)
        else:
            k = min(x.shape[1] for x in parts["top"])
            top = torch.cat([v[:, :k] for v in parts["top"]])
            tops = torch.cat([v[:, :k] for v in parts["tops"]])
            opt, pess, q = torch.cat(parts["opt"]), torch.cat(parts["pess"]), torch.cat(parts["q"])
            out = torch.cat(parts["out"])
        ranks = RankResult(
            rank=(opt.double() + pess.double()) / 2.0,
            optimistic=opt,
            pessimistic=pess,
            relation=q[:, 1],
            direction=torch.ones(len(q), dtype=torch.long),
            answer=q[:, 2],
            anchor=q[:, 0],
            unrepresented=torch.zeros(len(q), dtype=torch.bool),
            outside_pool=out,
        )
        return ranks, top, tops, q


def predictions_table(graph: Graph, result: ZeroShotResult, per_relation: int = 3) -> list[dict[str, Any]]:
    """A few queries per relation with their top-k tails (keys), for reports."""
    keys = graph.entity_keys
    rel_keys = graph.relation_keys
    rows, seen = [], {}
    for i, (h, r, t) in enumerate(result.queries.tolist()):
        if seen.get(r, 0) >= per_relation:
            continue
        seen[r] = seen.get(r, 0) + 1
        rows.append(
            {
                "head": keys[h],
                "relation": rel_keys[r],
                "answer": keys[t],
                "rank": float(result.ranks.rank[i]),
                "top": [keys[e] for e in result.topk[i].tolist()],
                "scores": [round(float(s), 5) for s in result.topk_scores[i].tolist()],
            }
        )
    return rows


def load_prompts(path: str | Path | None) -> dict[str, str]:
    """Relation key → template from a YAML/JSON file, or {}."""
    if path is None:
        return {}
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InputError("prompt file not found", path=file)
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError("expected a mapping relation key → prompt template", path=file)
    return {str(k): v for k, v in data.items()}

"""Reports of a run: a per-relation MRR bar chart (PNG + DVC plots data) and an HTML page of
qualitative top-k predictions (the query's image or text, the predicted entities).

The HTML page is self-contained: images are embedded as small JPEG data URIs, so it can be
opened anywhere and tracked by DVC as one file.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkge.evaluation import evaluation_triples
from vlkge.fileio import atomic_path, write_text_atomic
from vlkge.graph import Graph
from vlkge.model import KGEModel
from vlkge.ranking import Filters, candidate_pools, rank_filtered

THUMBNAIL = 160  # px, longest side


# --------------------------------------------------------------------------- chart


def per_relation_rows(result: dict[str, Any]) -> list[tuple[str, float, int]]:
    """(relation, MRR, count) per evaluated relation, best first."""
    rows = [(rel, float(m["mrr"]), int(m["count"])) for rel, m in result.get("per_relation", {}).items()]
    return sorted(rows, key=lambda r: -r[1])


def _mrr_sd(result: dict[str, Any], relation: str) -> float | None:
    """The MRR's standard deviation over a group's seeds, None for one run."""
    return result["per_relation"][relation].get("sd", {}).get("mrr")


def write_mrr_plot_data(path: str | Path, result: dict[str, Any]) -> None:
    """``relation,mrr,count`` CSV (``mrr_sd`` too for a group of seeds): the DVC plots data behind
    the bar chart."""
    spread = "seeds" in result
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["relation", "mrr", "count", *(["mrr_sd"] if spread else [])])
        for rel, mrr, count in per_relation_rows(result):
            sd = [f"{_mrr_sd(result, rel):.6f}"] if spread else []
            writer.writerow([rel, f"{mrr:.6f}", count, *sd])


def plot_mrr(path: str | Path, result: dict[str, Any], title: str = "") -> None:
    """A horizontal bar chart of per-relation MRR (with the overall MRR as a line) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = per_relation_rows(result)
    height = max(2.5, 0.35 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height), dpi=100)
    labels = [f"{rel} (n={count:,})" for rel, _, count in rows]
    values = [mrr for _, mrr, _ in rows]
    spread = [_mrr_sd(result, rel) or 0.0 for rel, _, _ in rows] if "seeds" in result else None
    ax.barh(range(len(rows)), values, xerr=spread, color="#4c72b0", error_kw={"elinewidth": 1})
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("MRR")
    for i, v in enumerate(values):
        ax.text(min(v + 0.01, 0.93), i, f"{v:.3f}", va="center", fontsize=7)
    overall = result.get("overall", {}).get("mrr")
    if overall is not None:
        ax.axvline(overall, color="#c44e52", linestyle="--", linewidth=1, label=f"overall {overall:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    seeds = f" · mean ± sd over {len(result['seeds'])} seeds" if "seeds" in result else ""
    ax.set_title((title or "MRR per relation") + seeds, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------- predictions


@dataclass
class Query:
    """One sample query (h, r, ?) with its answer and the model's top-k tails."""

    head: int
    relation: int
    answer: int
    top: list[int]
    scores: list[float]


def queries_from_predictions(graph: Graph, predictions: list[dict[str, Any]]) -> list[Query]:
    """The queries of a ``vlkge zeroshot`` JSON's ``predictions`` (entity and relation keys)."""
    index = {k: i for i, k in enumerate(graph.entity_keys)}
    rel_index = graph.relation_index
    return [
        Query(
            index[p["head"]],
            rel_index[p["relation"]],
            index[p["answer"]],
            [index[e] for e in p["top"]],
            p["scores"],
        )
        for p in predictions
    ]


def sample_queries(graph: Graph, split: str, per_relation: int, seed: int) -> torch.Tensor:
    """Up to ``per_relation`` seeded triples [Q, 3] of each evaluated relation of ``split``."""
    triples = evaluation_triples(graph, split)
    rng = np.random.default_rng(seed)
    picked = []
    for rel in torch.unique(triples[:, 1]).tolist():
        idx = torch.nonzero(triples[:, 1] == rel).squeeze(1).numpy()
        picked.extend(sorted(rng.choice(idx, size=min(per_relation, len(idx)), replace=False).tolist()))
    return triples[picked] if picked else triples[:0]


@torch.no_grad()
def top_predictions(model: KGEModel, graph: Graph, queries: torch.Tensor, k: int = 5) -> list[Query]:
    """The model's filtered top-``k`` tails (within the relation's pool when the protocol says so)
    for each query [Q, 3]; other true tails are filtered out, the answer itself kept."""
    model.eval()
    device = next(model.parameters()).device
    filters = Filters.build(graph.all_triples(), graph.num_relations, "correct")
    pools = candidate_pools(graph)[1] if graph.protocol["candidate_pools"] == "per_relation" else None
    h, r, t = queries[:, 0], queries[:, 1], queries[:, 2]
    scores = model.score_tails(h.to(device), r.to(device)).float().cpu()
    allowed = model.entity.present.cpu().unsqueeze(0)  # entities with a representation
    allowed = allowed.expand_as(scores) if pools is None else pools[r] & allowed
    ranked = rank_filtered(scores, t, filters.tail.lookup(h * graph.num_relations + r), allowed, top_k=k)
    out = []
    for i in range(len(queries)):
        finite = torch.isfinite(ranked.top_scores[i])
        top, values = ranked.top[i][finite].tolist(), ranked.top_scores[i][finite].tolist()
        out.append(Query(int(h[i]), int(r[i]), int(t[i]), top, values))
    return out


# --------------------------------------------------------------------------- HTML


def thumbnail_uri(path: Path) -> str | None:
    """A JPEG data URI of the image at ``path`` (longest side :data:`THUMBNAIL`), or None."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.2em}
td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:center;font-size:.85em}
th{background:#f3f3f3}
.entity{width:170px}
.entity img{max-width:160px;max-height:160px;display:block;margin:0 auto .3em}
.text{font-size:.8em;color:#555;max-width:160px;margin:0 auto;text-align:left}
.hit{background:#e4f5e4}
.rel{font-weight:bold}
"""


def _entity_cell(graph: Graph, eid: int, extra: str = "", css: str = "entity") -> str:
    row = graph.entities.row(eid, named=True)
    parts = []
    for rel in row["images"] or []:
        uri = thumbnail_uri(graph.root.parent / rel)
        if uri is not None:
            parts.append(f'<img src="{uri}" alt="{html.escape(row["name"] or "")}">')
            break
    parts.append(f"<div><b>{html.escape(str(row['name']))}</b></div>")
    if row["type"]:
        parts.append(f"<div class='text'>{html.escape(row['type'])}</div>")
    if row["text"] and row["text"] != row["name"]:
        text = row["text"] if len(row["text"]) <= 160 else row["text"][:157] + "…"
        parts.append(f"<div class='text'>{html.escape(text)}</div>")
    if extra:
        parts.append(f"<div class='text'>{extra}</div>")
    return f"<td class='{css}'>{''.join(parts)}</td>"


def render_topk_html(graph: Graph, queries: list[Query], title: str, note: str = "") -> str:
    """The qualitative page: one row per query — the query entity, the relation, the top-k."""
    k = max((len(q.top) for q in queries), default=0)
    head = "".join(f"<th>#{i + 1}</th>" for i in range(k))
    body = []
    for q in queries:
        cells = [
            _entity_cell(graph, q.head),
            f"<td class='rel'>{html.escape(graph.relation_keys[q.relation])}</td>",
        ]
        for eid, score in zip(q.top, q.scores, strict=True):
            hit = eid == q.answer
            mark = "✓ answer · " if hit else ""
            cells.append(
                _entity_cell(graph, eid, f"{mark}score {score:.3f}", "entity hit" if hit else "entity")
            )
        cells.extend("<td></td>" for _ in range(k - len(q.top)))
        answer = graph.entities.row(q.answer, named=True)["name"]
        cells.append(f"<td class='text'>{html.escape(str(answer))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"
        f"<table><tr><th>query</th><th>relation</th>{head}<th>answer</th></tr>{''.join(body)}</table>"
        "</body></html>\n"
    )


def write_report(
    out_dir: str | Path,
    graph: Graph,
    result: dict[str, Any],
    queries: list[Query],
    *,
    title: str,
) -> dict[str, Path]:
    """Write ``per_relation_mrr.png``, ``per_relation_mrr.csv`` and ``topk.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "png": out / "per_relation_mrr.png",
        "csv": out / "per_relation_mrr.csv",
        "html": out / "topk.html",
    }
    setup = result.get("setup", {})
    overall = result.get("overall", {}).get("mrr", 0.0)
    plot_mrr(files["png"], result, f"{title}: MRR per relation (overall {overall:.3f})")
    write_mrr_plot_data(files["csv"], result)
    note = (
        f"split {setup.get('split')} · filtered · candidate pools {setup.get('candidate_pools')} · "
        f"top-{max((len(q.top) for q in queries), default=0)} tails of sample queries, answer marked ✓"
    )
    write_text_atomic(files["html"], render_topk_html(graph, queries, title, note))
    return files

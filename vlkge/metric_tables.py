"""Metric tables: the fixed-width text table, the compact DVC metrics and the per-relation CSV
of an evaluation result, and the aggregate of a group of seeds (mean, with the sample standard
deviation under ``sd``) that all of them print (charts and HTML pages are in
:mod:`vlkge.reports`)."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlkge.evaluation import HITS_AT
from vlkge.fileio import atomic_path

_COLUMNS = ("mrr", *(f"hits@{k}" for k in HITS_AT))


def entity_groups(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``seen`` / ``unseen`` entity metrics, those with queries, when the split has queries
    touching entities absent from train (inductive); else empty."""
    parts = result.get("entities", {})
    if not parts.get("unseen", {}).get("count"):
        return {}
    return {name: parts[name] for name in ("seen", "unseen") if parts[name]["count"]}


def compact_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """Overall and per-direction numbers only, plus seen and unseen entities apart when the split
    has queries touching entities absent from train: what `dvc metrics diff` compares. A group of
    seeds adds each group's standard deviations (``sd``) and every seed's overall numbers."""
    groups = {k: result[k] for k in ("overall", "head", "tail") if k in result}
    groups.update({f"{name}_entities": entry for name, entry in entity_groups(result).items()})
    out: dict[str, Any] = {}
    for key, entry in groups.items():
        out[key] = {m: entry[m] for m in (*_COLUMNS, "count")}
        if "sd" in entry:
            out[key]["sd"] = {m: entry["sd"][m] for m in _COLUMNS}
    if "per_seed" in result:
        out["per_seed"] = {str(r["seed"]): {m: r[m] for m in _COLUMNS} for r in result["per_seed"]}
    if "neighbours" in result:
        out["neighbours"] = compact_neighbours(result["neighbours"])
    return out


def compact_neighbours(block: dict[str, Any]) -> dict[str, Any]:
    """The nearest-neighbour baseline beside a run (:func:`vlkge.neighbours.beside_model`), for
    DVC: per modality set its overall / seen / unseen numbers, and the model's MRR ÷ the best
    baseline's per group (``model_over_best``)."""
    out: dict[str, Any] = {name: compact_metrics(r) for name, r in block["results"].items()}
    out["model_over_best"] = {
        _GROUP_KEYS[group]: entry["ratio"] for group, entry in block["model_over_best"].items()
    }
    return out


_GROUP_KEYS = {"overall": "overall", "seen": "seen_entities", "unseen": "unseen_entities"}


def _setup_lines(result: dict[str, Any]) -> list[str]:
    """The table's head: what was evaluated, how, and every query that was not scored normally."""
    setup = result.get("setup", {})
    lines = [
        f"split {setup.get('split')} | protocol {setup.get('protocol')} | directions "
        f"{setup.get('directions')} | ties {setup.get('ties', 'realistic')}"
    ]
    if "seeds" in result:
        lines.append(f"mean ± sd over {len(result['seeds'])} seeds: {', '.join(map(str, result['seeds']))}")
    unrepresented, dropped = setup.get("unrepresented_queries", 0), setup.get("dropped_queries", 0)
    if dropped:
        lines.append(f"{dropped} queries touching entities with no representation DROPPED (evaluate.missing)")
    elif unrepresented:
        lines.append(
            f"{unrepresented} queries touching entities with no representation: misses at the worst rank"
        )
    if setup.get("outside_pool_queries"):
        lines.append(
            f"{setup['outside_pool_queries']} answers outside their candidate pool: misses at the worst rank"
        )
    return lines


def format_metrics(result: dict[str, Any]) -> str:
    """A fixed-width table: overall, per direction, per relation, then seen / unseen entities;
    for a group of seeds, each figure is mean±sd."""
    width = 15 if "seeds" in result else 7
    head = " ".join(f"{c:>{width}s}" for c in ("MRR", "H@1", "H@3", "H@10"))
    lines = [*_setup_lines(result), f"{'':32s} {head} {'n':>7s}"]

    def cell(m: dict[str, Any], column: str) -> str:
        if "sd" not in m:
            return f"{m[column]:{width}.4f}"
        return f"{m[column]:.4f}±{m['sd'][column]:.4f}".rjust(width)

    def row(label: str, m: dict[str, Any]) -> str:
        return f"{label[:32]:32s} " + " ".join(cell(m, c) for c in _COLUMNS) + f" {m['count']:7d}"

    for key in ("overall", "head", "tail"):
        if key in result:
            lines.append(row(key, result[key]))
    for rel, m in result.get("per_relation", {}).items():
        lines.append(row(f"  {rel}", m))
    for name, m in entity_groups(result).items():
        lines.append(row(f"{name} entities", m))
    if "neighbours" in result:
        lines.extend(neighbour_rows(result["neighbours"], row))
    return "\n".join(lines)


def neighbour_rows(block: dict[str, Any], row: Callable[[str, dict[str, Any]], str]) -> list[str]:
    """The baseline's rows under the model's (same queries), then model ÷ best baseline per group."""
    lines = ["nearest neighbours over the run's features, no training (same queries):"]
    for name, result in block["results"].items():
        lines.append(row(f"  {name}: overall", result["overall"]))
        for group, m in entity_groups(result).items():
            lines.append(row(f"  {name}: {group} entities", m))
    ratios = [
        f"{group} {e['ratio']:.2f} (vs {e['baseline']})"
        for group, e in block["model_over_best"].items()
        if e["ratio"] is not None
    ]
    if ratios:
        lines.append("model MRR / best neighbours MRR: " + " | ".join(ratios))
    return lines


def _mean_sd(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One metrics entry from the same entry of several seeds: means, ``sd`` (sample standard
    deviation, 0 for one seed), the first's count; nested entries (directions …) alike."""
    out: dict[str, Any] = {}
    spread: dict[str, float] = {}
    for key, value in entries[0].items():
        values = [e.get(key) for e in entries]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            out[key] = _mean_sd(values)
        elif key in _COLUMNS:
            out[key] = statistics.fmean(values)
            spread[key] = statistics.stdev(values) if len(values) > 1 else 0.0
        elif key != "sd":
            out[key] = value
    if spread:
        out["sd"] = spread
    return out


def aggregate_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluations of a group of seeds (same split, protocol and queries) as one result: each
    metric's mean with its sample standard deviation under ``sd``, every seed's overall figures
    under ``per_seed``; per-relation entries present in every seed."""
    out: dict[str, Any] = {"seeds": [r.get("seed") for r in results]}
    for key in ("overall", "head", "tail"):
        if all(key in r for r in results):
            out[key] = _mean_sd([r[key] for r in results])
    relations = results[0].get("per_relation", {})
    out["per_relation"] = {
        rel: _mean_sd([r["per_relation"][rel] for r in results])
        for rel in relations
        if all(rel in r.get("per_relation", {}) for r in results)
    }
    if all("entities" in r for r in results):
        out["entities"] = _mean_sd([r["entities"] for r in results])
    out["setup"] = results[0].get("setup", {})
    out["per_seed"] = [{"seed": r.get("seed"), **{m: r["overall"][m] for m in _COLUMNS}} for r in results]
    if all("neighbours" in r for r in results):
        out["neighbours"] = _neighbours_of_seeds([r["neighbours"] for r in results])
    return out


def _neighbours_of_seeds(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The baseline block of a group of seeds: the baseline itself is the same for every seed (same
    queries, no training), the model's MRR in each ratio is the seeds' mean."""
    ratios = {}
    for group, first in blocks[0]["model_over_best"].items():
        mean = statistics.fmean(b["model_over_best"][group]["model_mrr"] for b in blocks)
        base = first["baseline_mrr"]
        ratios[group] = {**first, "model_mrr": mean, "ratio": mean / base if base > 0 else None}
    return {**blocks[0], "model_over_best": ratios}


def write_per_relation_csv(path: str | Path, result: dict[str, Any]) -> None:
    """relation, direction, mrr, hits@1/3/10, count — one row per relation and direction."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        spread = "seeds" in result  # a group of seeds: each figure's sd beside it
        sd_columns = [f"{c}_sd" for c in _COLUMNS] if spread else []
        writer.writerow(["relation", "direction", *_COLUMNS, "count", *sd_columns])
        for rel, m in result.get("per_relation", {}).items():
            for direction in ("both", "head", "tail"):
                entry = m if direction == "both" else m.get(direction)
                if entry:
                    sds = [f"{entry['sd'][c]:.6f}" for c in _COLUMNS] if spread else []
                    writer.writerow(
                        [rel, direction, *(f"{entry[c]:.6f}" for c in _COLUMNS), entry["count"], *sds]
                    )

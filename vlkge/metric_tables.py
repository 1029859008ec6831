"""Metric tables: the fixed-width text table, the compact DVC metrics and the per-relation CSV
of an evaluation result (charts and HTML pages are in :mod:`vlkge.reports`)."""

from __future__ import annotations

import csv
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
    has queries touching entities absent from train: what `dvc metrics diff` compares."""
    groups = {k: result[k] for k in ("overall", "head", "tail") if k in result}
    groups.update({f"{name}_entities": entry for name, entry in entity_groups(result).items()})
    out: dict[str, Any] = {k: {m: entry[m] for m in (*_COLUMNS, "count")} for k, entry in groups.items()}
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


def format_metrics(result: dict[str, Any]) -> str:
    """A fixed-width table: overall, per direction, per relation, then seen / unseen entities."""
    setup = result.get("setup", {})
    lines = [
        f"split {setup.get('split')} | protocol {setup.get('protocol')} | directions "
        f"{setup.get('directions')} | ties {setup.get('ties', 'realistic')}",
        f"{'':32s} {'MRR':>7s} {'H@1':>7s} {'H@3':>7s} {'H@10':>7s} {'n':>7s}",
    ]

    def row(label: str, m: dict[str, Any]) -> str:
        return f"{label[:32]:32s} " + " ".join(f"{m[c]:7.4f}" for c in _COLUMNS) + f" {m['count']:7d}"

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


def write_per_relation_csv(path: str | Path, result: dict[str, Any]) -> None:
    """relation, direction, mrr, hits@1/3/10, count — one row per relation and direction."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["relation", "direction", *_COLUMNS, "count"])
        for rel, m in result.get("per_relation", {}).items():
            for direction in ("both", "head", "tail"):
                entry = m if direction == "both" else m.get(direction)
                if entry:
                    writer.writerow([rel, direction, *(f"{entry[c]:.6f}" for c in _COLUMNS), entry["count"]])

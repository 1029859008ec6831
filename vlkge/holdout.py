"""An inductive variant of a graph: hold a fraction of its entities out of training.

The held-out entities keep their rows (ids, texts, images) but every triple that touches them
leaves train and valid and is moved to test; their representation can then only come from their
features. Evaluation reports the triples touching them as ``unseen`` (see
:func:`vlkge.evaluation.seen_unseen`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from vlkge.graph import SPLITS, Graph, write_graph


def hold_out_entities(graph: Graph, fraction: float, out_dir: str | Path, *, seed: int = 0) -> Graph:
    """Write ``out_dir`` (a canonical graph directory): ``graph`` with ``fraction`` of its
    entities, drawn at random with ``seed``, unseen in train and valid."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    n = graph.num_entities
    held = np.zeros(n, dtype=bool)
    held[rng.choice(n, size=max(1, round(fraction * n)), replace=False)] = True
    rows = []
    for split in SPLITS:
        triples = graph.triples[split]
        touches = held[triples[:, 0]] | held[triples[:, 2]]
        target = np.where(touches, "test", split)
        rows.append(
            pl.DataFrame(
                {
                    "head": triples[:, 0].astype(np.int32),
                    "relation": triples[:, 1].astype(np.int32),
                    "tail": triples[:, 2].astype(np.int32),
                    "split": target,
                }
            )
        )
    frame = pl.concat(rows)
    meta = {
        **{k: v for k, v in graph.meta.items() if k not in ("counts", "format_version", "protocol")},
        "protocol": {**graph.protocol, "inductive": True},
        "holdout": {
            "source": str(graph.root),
            "fraction": fraction,
            "seed": seed,
            "entities": int(held.sum()),
            "held_out_keys": [graph.entity_keys[i] for i in np.flatnonzero(held)],
        },
    }
    return write_graph(out_dir, graph.entities, graph.relations, frame, meta)

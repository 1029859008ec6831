"""An inductive variant of a graph: hold a fraction of its entities out of training, for valid and
for test.

``fraction`` of the entities, drawn at random with ``seed``, are held out and split in two halves:
valid-held and test-held. Every triple touching a test-held entity goes to test; else, touching a
valid-held one, to valid; else it keeps its split. Early stopping on valid then sees queries about
entities absent from train, the case it is judged on in test, without ever seeing a test entity.
The entities keep their rows (ids, texts, images), so the original graph's feature stores fit.

Entities can be absent from train without being drawn: those whose every triple touched a held-out
one. ``meta.json`` lists every entity absent from train (``holdout.absent_from_train``), drawn or
not, with counts, and sets ``protocol.inductive``. Evaluation reports the queries touching them as
``unseen`` (:func:`vlkge.evaluation.seen_unseen`).

For quick runs (the demo's small budgets, tests), :func:`connected_part` draws a smaller graph
first: ``size`` entities grown breadth first through the triples from random starts, with every
triple among them.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from vlkge.graph import SPLITS, Graph, write_graph


def draw_held_out(num_entities: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted entity ids held out for valid and for test: ``round(fraction · N)`` (at least 2)
    drawn with ``seed``, the first half (rounded down) for valid, the rest for test."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    count = min(num_entities, max(2, round(fraction * num_entities)))
    drawn = np.random.default_rng(seed).choice(num_entities, size=count, replace=False)
    half = count // 2
    return np.sort(drawn[:half]), np.sort(drawn[half:])


def reassign_splits(graph: Graph, valid_held: np.ndarray, test_held: np.ndarray) -> pl.DataFrame:
    """The triples table with each triple's new split: test when it touches a test-held entity,
    else valid when it touches a valid-held one, else its own."""
    n = graph.num_entities
    to_test, to_valid = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    to_test[test_held], to_valid[valid_held] = True, True
    frames = []
    for split in SPLITS:
        triples = graph.triples[split]
        h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
        target = np.where(to_valid[h] | to_valid[t], "valid", split)
        target = np.where(to_test[h] | to_test[t], "test", target)
        frames.append(
            pl.DataFrame(
                {
                    "head": h.astype(np.int32),
                    "relation": r.astype(np.int32),
                    "tail": t.astype(np.int32),
                    "split": target,
                }
            )
        )
    return pl.concat(frames)


def absent_from_train(num_entities: int, triples: pl.DataFrame) -> np.ndarray:
    """Sorted ids of the entities that occur in no train triple."""
    train = triples.filter(pl.col("split") == "train")
    seen = np.zeros(num_entities, dtype=bool)
    seen[train["head"].to_numpy()] = True
    seen[train["tail"].to_numpy()] = True
    return np.flatnonzero(~seen)


def hold_out_entities(graph: Graph, fraction: float, out_dir: str | Path, *, seed: int = 0) -> Graph:
    """Write ``out_dir`` (a canonical graph directory): ``graph`` with ``fraction`` of its entities
    held out of train, half for valid and half for test (module docstring)."""
    valid_held, test_held = draw_held_out(graph.num_entities, fraction, seed)
    frame = reassign_splits(graph, valid_held, test_held)
    keys = graph.entity_keys
    absent = absent_from_train(graph.num_entities, frame)
    drawn = np.union1d(valid_held, test_held)
    before = np.repeat(np.array(SPLITS), [len(graph.triples[s]) for s in SPLITS])
    after = frame["split"].to_numpy()
    moved = {f"{a}→{b}": int(((before == a) & (after == b)).sum()) for a in SPLITS for b in SPLITS if a != b}
    holdout: dict[str, Any] = {
        "source": str(graph.root),
        "fraction": fraction,
        "seed": seed,
        "rule": "triples touching a test-held entity → test, else touching a valid-held one → valid",
        "held_out": {"valid": len(valid_held), "test": len(test_held)},
        "held_out_keys": {
            "valid": [keys[i] for i in valid_held],
            "test": [keys[i] for i in test_held],
        },
        "triples_moved": {k: v for k, v in moved.items() if v},
        "absent_from_train": {
            "count": len(absent),
            "drawn": int(np.isin(absent, drawn).sum()),
            "not_drawn": int((~np.isin(absent, drawn)).sum()),
            "keys": [keys[i] for i in absent],
        },
    }
    meta = {
        **{k: v for k, v in graph.meta.items() if k not in ("counts", "format_version", "protocol")},
        "protocol": {**graph.protocol, "inductive": True},
        "holdout": holdout,
    }
    return write_graph(out_dir, graph.entities, graph.relations, frame, meta)


def grow_entities(graph: Graph, size: int, seed: int) -> np.ndarray:
    """Sorted ids of ``size`` entities grown breadth first through the triples of every split (both
    directions, neighbours in triple order) from an entity drawn with ``seed``, and from the next
    drawn one when a component is used up: a connected neighbourhood where the graph allows."""
    n = graph.num_entities
    if size >= n:
        return np.arange(n)
    triples = graph.all_triples()
    src = np.concatenate([triples[:, 0], triples[:, 2]])
    dst = np.concatenate([triples[:, 2], triples[:, 0]])
    order = np.argsort(src, kind="stable")
    dst, bounds = dst[order], np.searchsorted(src[order], np.arange(n + 1))
    chosen = np.zeros(n, dtype=bool)
    picked: list[int] = []
    for start in np.random.default_rng(seed).permutation(n):
        if len(picked) >= size:
            break
        if chosen[start]:
            continue
        chosen[start] = True
        picked.append(int(start))
        queue = deque([int(start)])
        while queue and len(picked) < size:
            for other in dst[bounds[queue[0]] : bounds[queue[0] + 1]]:
                if not chosen[other] and len(picked) < size:
                    chosen[other] = True
                    picked.append(int(other))
                    queue.append(int(other))
            queue.popleft()
    return np.sort(np.array(picked, dtype=np.int64))


def connected_part(graph: Graph, size: int, out_dir: str | Path, *, seed: int = 0) -> Graph:
    """Write ``out_dir`` (a canonical graph directory): ``graph`` restricted to ``size`` entities
    (:func:`grow_entities`) and the triples among them, each in its own split; entity ids renumbered
    in their order, relations and every entity column unchanged."""
    keep = grow_entities(graph, size, seed)
    new_id = np.full(graph.num_entities, -1, dtype=np.int64)
    new_id[keep] = np.arange(len(keep))
    frames = []
    for split in SPLITS:
        triples = graph.triples[split]
        inside = triples[(new_id[triples[:, 0]] >= 0) & (new_id[triples[:, 2]] >= 0)]
        frames.append(
            pl.DataFrame(
                {
                    "head": new_id[inside[:, 0]].astype(np.int32),
                    "relation": inside[:, 1].astype(np.int32),
                    "tail": new_id[inside[:, 2]].astype(np.int32),
                    "split": np.full(len(inside), split),
                },
                schema={"head": pl.Int32, "relation": pl.Int32, "tail": pl.Int32, "split": pl.String},
            )
        )
    entities = graph.entities.filter(pl.col("entity_id").is_in(keep.tolist())).with_columns(
        entity_id=pl.Series(np.arange(len(keep), dtype=np.int32))
    )
    part = {"source": str(graph.root), "entities": len(keep), "of": graph.num_entities, "seed": seed}
    meta = {
        **{k: v for k, v in graph.meta.items() if k not in ("counts", "format_version", "protocol")},
        "protocol": graph.protocol,
        "connected_part": part,
    }
    return write_graph(out_dir, entities, graph.relations, pl.concat(frames), meta)

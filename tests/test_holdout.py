"""The inductive variant: held-out entities split between valid and test, triples moved by the
rule (test-held → test, else valid-held → valid, else unchanged), every entity absent from train
listed, entity rows unchanged so the original feature store fits; and the benchmark that makes it
prints the commands to run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from tests.conftest import REPO, make_graph
from vlkge import holdout
from vlkge.graph import SPLITS, graph_hashes
from vlkge.holdout import (
    absent_from_train,
    connected_part,
    draw_held_out,
    grow_entities,
    hold_out_entities,
    reassign_splits,
)


def triples_by_split(graph) -> dict[str, set[tuple[int, int, int]]]:
    return {s: set(map(tuple, graph.triples[s].tolist())) for s in SPLITS}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_held_out_entities_leave_train_for_valid_and_test(demo_graph, tmp_path, seed):
    held = hold_out_entities(demo_graph, 0.2, tmp_path / "ind" / "graph", seed=seed)
    info = held.meta["holdout"]
    index = {k: i for i, k in enumerate(held.entity_keys)}
    valid_held = {index[k] for k in info["held_out_keys"]["valid"]}
    test_held = {index[k] for k in info["held_out_keys"]["test"]}
    assert len(valid_held) == len(test_held) == 30 and not valid_held & test_held
    assert held.protocol["inductive"]
    before, after = triples_by_split(demo_graph), triples_by_split(held)
    assert Counter(map(tuple, held.all_triples().tolist())) == Counter(
        map(tuple, demo_graph.all_triples().tolist())
    )
    for split, triples in before.items():
        for h, r, t in triples:
            if {h, t} & test_held:
                expected = "test"
            elif {h, t} & valid_held:
                expected = "valid"
            else:
                expected = split
            assert (h, r, t) in after[expected]
    in_train = held.in_train().numpy()
    assert not in_train[list(valid_held | test_held)].any()
    # valid now asks about entities absent from train, as test does
    valid = held.triples["valid"]
    assert (~in_train[valid[:, 0]] | ~in_train[valid[:, 2]]).sum() > 0
    # the absent list is exact: every entity in no train triple, drawn or not
    absent = info["absent_from_train"]
    assert set(absent["keys"]) == {k for k, seen in zip(held.entity_keys, in_train, strict=True) if not seen}
    assert absent["count"] == len(absent["keys"]) == absent["drawn"] + absent["not_drawn"]
    assert absent["drawn"] == 60
    # entity and relation rows unchanged: the original graph's feature store fits
    assert graph_hashes(held) == graph_hashes(demo_graph)
    assert held.entities.equals(demo_graph.entities)


def test_an_entity_whose_every_triple_touches_a_held_out_one_is_listed_absent(tmp_path, monkeypatch):
    # e1 and e2 hang on e0 only; e3–e5 form their own component
    triples = {
        "train": [(1, 0, 0), (0, 0, 2), (3, 0, 4), (4, 0, 5)],
        "valid": [(3, 0, 5)],
        "test": [(2, 0, 1)],
    }
    graph = make_graph(tmp_path / "g", triples, num_entities=6, num_relations=1)
    frame = reassign_splits(graph, valid_held=np.array([0]), test_held=np.array([5]))
    moved = dict(
        zip(map(tuple, frame.select("head", "relation", "tail").rows()), frame["split"], strict=True)
    )
    assert moved[1, 0, 0] == moved[0, 0, 2] == "valid"  # touch e0 (valid-held)
    assert moved[4, 0, 5] == moved[3, 0, 5] == "test"  # touch e5 (test-held); the valid one too
    assert moved[3, 0, 4] == "train" and moved[2, 0, 1] == "test"  # untouched: kept
    assert absent_from_train(6, frame).tolist() == [0, 1, 2, 5]  # e1, e2 not drawn, absent all the same
    monkeypatch.setattr(holdout, "draw_held_out", lambda n, f, seed: (np.array([0]), np.array([5])))
    absent = hold_out_entities(graph, 0.3, tmp_path / "ind" / "graph").meta["holdout"]["absent_from_train"]
    assert absent == {"count": 4, "drawn": 2, "not_drawn": 2, "keys": ["e0", "e1", "e2", "e5"]}


def test_draw_is_seeded_and_split_in_halves():
    valid, test = draw_held_out(101, 0.1, seed=3)
    again = draw_held_out(101, 0.1, seed=3)
    assert np.array_equal(valid, again[0]) and np.array_equal(test, again[1])
    assert len(valid) == 5 and len(test) == 5 and not set(valid) & set(test)
    with pytest.raises(ValueError):
        draw_held_out(10, 1.0, seed=0)


def test_benchmark_builds_the_variant_links_the_store_and_prints_the_commands(demo_graph, tmp_path):
    data = tmp_path / "data"
    source = data / "custom-demo"
    source.mkdir(parents=True)
    (source / "graph").symlink_to(demo_graph.root)
    (source / "features").mkdir()
    script = REPO / "benchmarks" / "vl_inductive.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--data-dir",
            str(data),
            "--dataset",
            "custom-demo",
            "--fraction",
            "0.2",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert "held out 30 entities for valid, 30 for test" in done.stdout
    neighbours = "zeroshot custom-demo-ind20 --mode neighbours --features lite --modalities text"
    assert f"{neighbours} --split valid" in done.stdout and f"{neighbours} --split test" in done.stdout
    assert "evaluate ind-vl-distmult --dataset custom-demo-ind20" in done.stdout
    assert (data / "custom-demo-ind20" / "features").resolve() == (source / "features").resolve()


def test_a_connected_part_keeps_the_triples_among_its_entities_renumbered(demo_graph, tmp_path):
    keep = grow_entities(demo_graph, 100, seed=3)
    assert len(keep) == 100 and np.array_equal(keep, np.unique(keep))
    assert np.array_equal(keep, grow_entities(demo_graph, 100, seed=3))  # seeded
    part = connected_part(demo_graph, 100, tmp_path / "part", seed=3)
    assert part.num_entities == 100 and part.meta["connected_part"]["of"] == demo_graph.num_entities
    assert part.entity_keys == [demo_graph.entity_keys[i] for i in keep]
    assert part.entities.drop("entity_id").equals(demo_graph.entities[keep.tolist()].drop("entity_id"))
    inside = set(keep.tolist())
    for split in SPLITS:
        expected = {
            (int(np.searchsorted(keep, h)), r, int(np.searchsorted(keep, t)))
            for h, r, t in demo_graph.triples[split].tolist()
            if h in inside and t in inside
        }
        assert triples_by_split(part)[split] == expected
    assert len(part.all_triples()) > 100  # grown through the triples: a neighbourhood, not a scatter
    assert np.array_equal(grow_entities(demo_graph, 10**6, seed=0), np.arange(demo_graph.num_entities))

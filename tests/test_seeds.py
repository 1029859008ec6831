"""Several seeds as one result: `vlkge train --seeds N` trains a group, `vlkge evaluate` and
`vlkge report` read it as mean ± sd, and the DVC metrics carry the spread and every seed."""

from __future__ import annotations

import csv
import json
import statistics

import pytest
from vlkge.pipeline.synthetic import write_synthetic_graph

from tests.test_cli import SMALL, vlkge
from vlkge.metric_tables import aggregate_seeds, compact_metrics, format_metrics


def _result(seed: int, mrr: float) -> dict:
    entry = {"mrr": mrr, "hits@1": mrr / 2, "hits@3": mrr, "hits@10": 1.0, "count": 10}
    return {"seed": seed, "overall": entry, "tail": entry, "per_relation": {"r0": entry}, "setup": {}}


def test_aggregate_is_mean_and_sample_sd():
    group = aggregate_seeds([_result(1, 0.5), _result(2, 0.7), _result(3, 0.9)])
    assert group["overall"]["mrr"] == pytest.approx(0.7)
    assert group["overall"]["sd"]["mrr"] == pytest.approx(statistics.stdev([0.5, 0.7, 0.9]))
    assert group["per_relation"]["r0"]["sd"]["hits@10"] == 0.0 and group["overall"]["count"] == 10
    assert group["seeds"] == [1, 2, 3] and [s["mrr"] for s in group["per_seed"]] == [0.5, 0.7, 0.9]
    table = format_metrics(group)
    assert "mean ± sd over 3 seeds: 1, 2, 3" in table
    assert "0.7000±0.2000" in table
    compact = compact_metrics(group)
    assert compact["overall"]["sd"]["mrr"] == pytest.approx(0.2)
    assert compact["per_seed"]["2"]["mrr"] == 0.7


@pytest.mark.slow
def test_train_seeds_evaluate_and_report_a_group(tmp_path):
    source = write_synthetic_graph(tmp_path / "src", entities=120, seed=2)
    vlkge("crawl", "custom:toy", "--source", str(source), cwd=tmp_path)
    vlkge("clean", "custom:toy", cwd=tmp_path)
    vlkge(
        "train", "custom:toy", *SMALL, "--seeds", "2", "--seed", "5", "--out", "grp", "--quiet", cwd=tmp_path
    )
    group = tmp_path / "data" / "custom-toy" / "models" / "grp"
    assert sorted(p.name for p in group.iterdir()) == ["seed-5", "seed-6"]
    seeds = [json.loads((group / s / "config.json").read_text())["seed"] for s in ("seed-5", "seed-6")]
    assert seeds == [5, 6]
    metrics = tmp_path / "metrics.json"
    shown = vlkge("evaluate", "grp", "--dataset", "custom:toy", "--metrics", str(metrics), cwd=tmp_path)
    assert "mean ± sd over 2 seeds: 5, 6" in shown.stdout and "±" in shown.stdout.splitlines()[-1]
    compact = json.loads(metrics.read_text())
    assert set(compact["per_seed"]) == {"5", "6"} and "sd" in compact["overall"]
    assert (group / "eval_test_correct.json").is_file()  # next to the group, not inside a seed
    vlkge("report", "grp", "--dataset", "custom:toy", "--out", str(tmp_path / "rep"), cwd=tmp_path)
    with open(tmp_path / "rep" / "per_relation_mrr.csv", encoding="utf-8") as handle:
        assert "mrr_sd" in next(csv.reader(handle))
    # a second `--seeds 2` into the same group resumes (finished runs stay as they are)
    again = vlkge(
        "train",
        "custom:toy",
        *SMALL,
        "--seeds",
        "2",
        "--seed",
        "5",
        "--out",
        "grp",
        cwd=tmp_path,
        check=False,
    )
    assert again.returncode != 0 and "--resume" in again.stderr
    vlkge(
        "train", "custom:toy", *SMALL, "--seeds", "2", "--seed", "5", "--out", "grp", "--resume", cwd=tmp_path
    )

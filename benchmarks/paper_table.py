"""The paper table: a preset × backbones × seeds × modalities, each group of seeds evaluated on
the test split under both protocols (the reference code's `paper` and our `correct`), printed as
the Markdown table the README shows (mean ± sd over the seeds).

Usage (from the repository root; one thread per run on a shared machine):

    python benchmarks/paper_table.py                                   # structure only, 4 × 3 runs
    python benchmarks/paper_table.py --modalities structural,visual,textual --features lite
    python benchmarks/paper_table.py --backbones rotate --seeds 3 --threads 1
    python benchmarks/paper_table.py --table-only                      # collect finished runs only

Runs go to ``data/<dataset>/models/<preset>-<backbone>[-<modalities>]/seed-<s>/``, the layout of
``vlkge train --preset paper --seeds N --out <preset>-<backbone>``, so ``vlkge evaluate`` and
``vlkge report`` read the same groups. An interrupted run resumes from its checkpoint and a
finished one is not trained again; evaluation is always redone (seconds). ``--json FILE`` also
writes every figure (per seed included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vlkge import api  # noqa: E402
from vlkge.config import Config, load_config  # noqa: E402
from vlkge.runs import HISTORY, run_path, seed_runs  # noqa: E402

BACKBONES = ("transe", "distmult", "complex", "rotate")
PROTOCOLS = ("paper", "correct")
COLUMNS = ("mrr", "hits@1", "hits@3", "hits@10")
#: the VL-KGE paper's WN9-IMG test figures (MRR, H@1, H@3, H@10) under its own protocol; the VL
#: rows are its CLIP (structure + image + text, average fusion) models, MRR only here
PAPER = {
    "structural": {
        "transe": (0.904, 0.894, 0.909, 0.922),
        "distmult": (0.904, 0.902, 0.904, 0.907),
        "complex": (0.900, 0.899, 0.901, 0.902),
        "rotate": (0.910, 0.907, 0.911, 0.917),
    },
    "structural,visual,textual": {
        "transe": (0.913, None, None, None),
        "distmult": (0.935, None, None, None),
        "complex": (0.927, None, None, None),
        "rotate": (0.914, None, None, None),
    },
}


def group_name(preset: str, backbone: str, modalities: str) -> str:
    """``paper-rotate`` (structure only), ``paper-rotate-vl`` (all three), else the modalities."""
    parts = modalities.split(",")
    tag = "" if parts == ["structural"] else "vl" if len(parts) == 3 else "+".join(parts)
    return f"{preset}-{backbone}" + (f"-{tag}" if tag else "")


def config_for(args: argparse.Namespace, backbone: str) -> Config:
    """The preset for ``backbone`` over params.yaml, with the table's modalities and threads."""
    model: dict[str, Any] = {"backbone": backbone, "modalities": args.modalities.split(",")}
    if args.modalities != "structural":
        model.update({"fusion": args.fusion, "features": args.features})
    train = {"threads": args.threads, "seeds": args.seeds, "epochs": args.epochs, "device": args.device}
    return load_config(args.params, {"preset": args.preset, "model": model, "train": train})


def best_epochs(group: Path) -> list[tuple[int, int]]:
    """(best valid epoch, epochs run) of each seed of a group, from its history."""
    out = []
    for run in seed_runs(group):
        history = json.loads((run / HISTORY).read_text(encoding="utf-8")) if (run / HISTORY).is_file() else []
        scored = [h for h in history if "valid_mrr" in h]
        best = max(scored, key=lambda h: (h["valid_mrr"], -h["epoch"]))["epoch"] if scored else 0
        out.append((best, len(history)))
    return out


def run_group(args: argparse.Namespace, backbone: str) -> dict[str, Any]:
    """Train (or resume, or skip) the group of seeds of one backbone; evaluate it both ways."""
    config = config_for(args, backbone)
    name = group_name(args.preset, backbone, args.modalities)
    group = run_path(name, args.data_dir, args.dataset)
    if not args.table_only:
        api.train_seeds(
            args.dataset, config, args.data_dir, out=str(group), resume=None, show=False, log=print
        )
    if len(seed_runs(group)) < args.seeds:
        return {}
    row: dict[str, Any] = {"backbone": backbone, "group": str(group), "epochs": best_epochs(group)}
    for protocol in PROTOCOLS:
        wanted = config.updated({"evaluate": {"protocol": protocol, "split": "test"}})
        metrics = api.evaluate(group, wanted, args.data_dir, dataset=args.dataset).metrics
        (group / f"eval_test_{protocol}.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        row[protocol] = {"overall": metrics["overall"], "per_seed": metrics.get("per_seed", [])}
    return row


def _cell(entry: dict[str, Any]) -> str:
    """``.904 ± .002 / .894 / .909 / .922``: MRR with its sd, then the Hits means."""
    sd = entry.get("sd", {}).get("mrr", 0.0)
    return f"{entry['mrr']:.3f} ± {sd:.3f} / " + " / ".join(f"{entry[c]:.3f}" for c in COLUMNS[1:])


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The README's table: paper, ours under the paper's protocol (Δ MRR), ours correct."""
    paper = PAPER.get(args.modalities, {})
    lines = [
        f"preset `{args.preset}`, modalities `{args.modalities}`, {args.seeds} seeds (mean ± sd), test split",
        "",
        "| backbone | paper: MRR / H@1 / H@3 / H@10 | ours, `--protocol paper` | Δ MRR | ours, correct "
        "protocol | best valid epoch / epochs run, per seed |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ref = paper.get(row["backbone"], (None,) * 4)
        ref_text = " / ".join("—" if v is None else f"{v:.3f}" for v in ref)
        ours = row["paper"]["overall"]
        delta = "—" if ref[0] is None else f"{ours['mrr'] - ref[0]:+.3f}"
        epochs = ", ".join(f"{b}/{n}" for b, n in row["epochs"])
        lines.append(
            f"| {row['backbone']} | {ref_text} | {_cell(ours)} | {delta} | "
            f"{_cell(row['correct']['overall'])} | {epochs} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--modalities", default="structural")
    parser.add_argument("--features", default="lite", help="Feature store of the VL rows.")
    parser.add_argument("--fusion", default="average")
    parser.add_argument("--dataset", default="wn9-img")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--params", default=None, help="Params file (default: ./params.yaml).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="Override the preset's (smoke runs).")
    parser.add_argument("--table-only", action="store_true", help="Collect finished groups; train none.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = [row for b in args.backbones.split(",") if (row := run_group(args, b))]
    print(markdown(rows, args))
    if args.json is not None:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()

"""``vlkge zeroshot``: the zero-shot baseline (prompted similarity in a shared-space encoder).

vlkge zeroshot wikiart-v1 --model clip --out reports/zeroshot.json
vlkge zeroshot wikiart-v1 --model tiny-clip --limit 200        # a quick look
vlkge zeroshot wikiart-v1 --model lite --query text            # text–text (no shared image space)
"""

from __future__ import annotations

from pathlib import Path

import typer


def zeroshot(
    dataset: str | None = typer.Argument(None, help="Dataset; default: `dataset` in params.yaml."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Shared-space encoder: clip | blip | tiny-clip (any text encoder with --query text).",
    ),
    arch: str | None = typer.Option(None, "--arch", help="Architecture (e.g. ViT-L-14)."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="open_clip pretrained tag."),
    weights: str | None = typer.Option(None, "--weights", help="Local checkpoint file or dir."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda[:N]."),
    split: str | None = typer.Option(None, "--split", help="valid | test (default: evaluate.split)."),
    query: str = typer.Option("auto", "--query", help="auto (image, else text) | image | text."),
    prompts: Path | None = typer.Option(
        None, "--prompts", help="YAML/JSON relation → template ('{}' is the candidate's name)."
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Rank only the first N queries."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Predictions kept per query (for reports)."),
    out: Path | None = typer.Option(
        None, "--out", help="Full results JSON (default: data/<ds>/zeroshot.json)."
    ),
    metrics: Path | None = typer.Option(None, "--metrics", help="Also write compact metrics (for DVC) here."),
    per_relation: Path | None = typer.Option(None, "--per-relation", help="Per-relation metrics CSV."),
) -> None:
    """Rank candidate tails per query by image–text or text–text similarity, with the graph's
    protocol (pools, filters, excluded relations); prints and writes the metrics."""
    from vlkge import paths
    from vlkge.cli import echo, resolve_dataset, state
    from vlkge.encoders import build_encoder
    from vlkge.fileio import write_json_atomic
    from vlkge.graph import read_graph
    from vlkge.metric_tables import compact_metrics, format_metrics, write_per_relation_csv
    from vlkge.zeroshot import load_prompts, zero_shot

    params = state.params(
        {
            "encode": {
                "model": model,
                "arch": arch,
                "pretrained": pretrained,
                "weights": weights,
                "device": device,
            },
            "evaluate": {"split": split},
        }
    )
    name = resolve_dataset(dataset, params)
    graph = read_graph(paths.graph_dir(state.data_dir, name))
    enc = params["encode"]
    encoder = build_encoder(
        enc["model"],
        arch=enc["arch"],
        pretrained=enc["pretrained"],
        weights=enc["weights"],
        device=enc["device"],
        precision=enc["precision"],
    )
    if not encoder.info.shared_space and query != "text":  # text–text needs only one text space
        from vlkge.errors import ConfigError

        raise ConfigError(
            f"encoder {enc['model']!r} has no shared image–text space",
            key="encode.model",
            hint="use clip, blip or tiny-clip, or --query text (text–text similarity in its text space)",
        )
    result = zero_shot(
        graph,
        encoder,
        params["evaluate"]["split"],
        prompts=load_prompts(prompts),
        query=query,
        batch_size=batch_size,
        top_k=top_k,
        limit=limit,
        log=echo,
    )
    out = out or paths.dataset_dir(state.data_dir, name) / "zeroshot.json"
    payload = dict(result.metrics)
    payload["predictions"] = predictions_table(graph, result)
    write_json_atomic(out, payload)
    if metrics is not None:
        write_json_atomic(metrics, compact_metrics(result.metrics))
    if per_relation is not None:
        write_per_relation_csv(per_relation, result.metrics)
    typer.echo(format_metrics(result.metrics))
    echo(f"wrote {out}")


def predictions_table(graph, result, per_relation: int = 3) -> list[dict]:
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


def register(app: typer.Typer) -> None:
    """Add the ``zeroshot`` command to the main typer app."""
    app.command("zeroshot")(zeroshot)

"""``vlkge zeroshot``: the baselines that need no training.

``--mode prompt`` (the default): prompted similarity in a shared-space encoder, tail queries.
``--mode neighbours``: entity-to-entity nearest neighbours over a feature store, ranked exactly as
``vlkge evaluate`` ranks a model (same queries, filters, pools, ties; :mod:`vlkge.neighbours`).

vlkge zeroshot wikiart-v1 --model clip --out reports/zeroshot.json
vlkge zeroshot wikiart-v1 --model tiny-clip --limit 200        # a quick look
vlkge zeroshot wikiart-v1 --model lite --query text            # text–text (no shared image space)
vlkge zeroshot wn9-img --mode neighbours --features lite --modalities text --split valid
vlkge zeroshot wn9-img --mode neighbours --features lite --modalities text --mentions   # + text mentions
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vlkge import paths
from vlkge.cli.common import echo, state, write_results
from vlkge.errors import ConfigError

if TYPE_CHECKING:
    from vlkge.config import Config

NEIGHBOUR_OPTIONS = "--mode neighbours reads a feature store: --features STORE, --modalities text|image|both"


def command(
    dataset: str | None = typer.Argument(None, help="Dataset; default: `dataset` in params.yaml."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Shared-space encoder: clip | blip | tiny-clip (any text encoder with --query text); "
        "neighbours: the store of this encoder, unless --features.",
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
    mode: str = typer.Option(
        "prompt", "--mode", help="prompt (prompted similarity) | neighbours (entity-to-entity, any store)."
    ),
    features: str | None = typer.Option(
        None, "--features", help="neighbours: store name or path (default: the store a run would read)."
    ),
    modalities: str | None = typer.Option(
        None, "--modalities", help="neighbours: text | image | both (default: all the store has)."
    ),
    mentions: bool = typer.Option(
        False, "--mentions", help="neighbours: add the untrained text-mention term (vlkge.neighbours)."
    ),
) -> None:
    """Rank candidates with no training: by prompted image–text or text–text similarity (tail
    queries), or (``--mode neighbours``) by the feature similarity of the query's entity to each
    candidate, with the graph's protocol (pools, filters, excluded relations); prints and writes
    the metrics."""
    from vlkge import api
    from vlkge.zeroshot import load_prompts, predictions_table

    encode = {"model": model, "arch": arch, "pretrained": pretrained, "weights": weights, "device": device}
    config = state.config({"encode": encode, "evaluate": {"split": split}})
    name = dataset or config.dataset
    if mode == "neighbours":
        prompt_only = {"--query": query != "auto", "--prompts": prompts, "--limit": limit}
        prompt_only.update({"--arch": arch, "--pretrained": pretrained, "--weights": weights})
        refused = [flag for flag, value in prompt_only.items() if value not in (None, False)]
        if refused:
            raise ConfigError(f"{', '.join(refused)}: for --mode prompt only", hint=NEIGHBOUR_OPTIONS)
        chosen = {"features": features, "modalities": modalities, "device": device, "mentions": mentions}
        _neighbours(name, config, chosen, out, metrics, per_relation)
        return
    if mode != "prompt":
        raise ConfigError(f"unknown --mode {mode!r}", hint="prompt | neighbours")
    neighbours_only = {"--features": features, "--modalities": modalities, "--mentions": mentions}
    given = [flag for flag, value in neighbours_only.items() if value]
    if given:
        raise ConfigError(f"{', '.join(given)}: for --mode neighbours only", hint=NEIGHBOUR_OPTIONS)
    graph, result = api.zeroshot(
        name,
        config,
        state.data_dir,
        query=query,
        prompts=load_prompts(prompts),
        batch_size=batch_size,
        top_k=top_k,
        limit=limit,
        log=echo,
    )
    payload = {**result.metrics, "predictions": predictions_table(graph, result)}
    write_results(
        payload, out or paths.dataset_dir(state.data_dir, name) / "zeroshot.json", metrics, per_relation
    )


def _neighbours(
    name: str, config: Config, chosen: dict, out: Path | None, metrics: Path | None, per_relation: Path | None
) -> None:
    """``--mode neighbours``: the baseline's metrics, written to ``out`` (default:
    ``data/<ds>/neighbours_<modalities>[+mentions]_<split>.json``)."""
    from vlkge import api
    from vlkge.neighbours import WITH_MENTIONS

    result = api.neighbours(name, config, state.data_dir, **chosen)
    chosen_set = result["setup"]["modalities"] + (WITH_MENTIONS if chosen["mentions"] else "")
    where = paths.dataset_dir(state.data_dir, name)
    write_results(
        result, out or where / f"neighbours_{chosen_set}_{config.evaluate.split}.json", metrics, per_relation
    )

"""Encode throughput against the bare model forward pass, and feature-store load time.

    python benchmarks/bench_encode.py                      # WN9-IMG with lite, from data/
    python benchmarks/bench_encode.py --model tiny-clip --batch-size 64

1. End to end: ``encode_graph`` into a fresh temporary store (DataLoader decoding in workers,
   pooling, Parquet shards, sidecars, merge), items/s per modality.
2. Bare forward: the same batches of the same inputs, already decoded and preprocessed in
   memory, through ``encode_images`` / ``encode_texts`` only; items/s.
   The ratio end-to-end / bare is the pipeline's efficiency (target >= 0.8). ``busy`` is the
   same ratio measured inside the end-to-end run (time in the encoder / wall time), immune to
   load from other processes drifting between the two measurements.
3. Load: ``load_features`` of each modality (best of 5), and with ``verify=True`` (sha256).

Needs the canonical graph (``vlkge crawl wn9-img && vlkge clean wn9-img``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from vlkge.encoders import build_encoder
from vlkge.encoding import EncodeOptions, encode_graph
from vlkge.features import load_features
from vlkge.graph import read_graph
from vlkge.modalities import IMAGE, TEXT
from vlkge.paths import graph_dir


def bare_images(encoder, plan, options: EncodeOptions) -> tuple[int, float]:
    """Decode every image first (not timed), then time the forward passes on the same batches
    the job forms (per shard, ``batch_size`` files). Returns (items, seconds)."""
    items, seconds = 0, 0.0
    for shard in range(plan.num_shards):
        files = [f for r in plan.rows_of(shard) for f in plan.files[r]]
        pixels = [encoder.image_transform(Image.open(f).convert("RGB")) for f in files]
        for start in range(0, len(pixels), options.batch_size):
            batch = torch.stack(pixels[start : start + options.batch_size])
            tick = time.perf_counter()
            encoder.encode_images(batch)
            seconds += time.perf_counter() - tick
            items += len(batch)
    return items, seconds


def bare_texts(encoder, plan, options: EncodeOptions) -> tuple[int, float]:
    """The job's text batches (per shard, longest first), forward passes only."""
    items, seconds = 0, 0.0
    for shard in range(plan.num_shards):
        texts = [plan.inputs[r] for r in plan.rows_of(shard)]
        texts.sort(key=lambda t: -len(t))
        for start in range(0, len(texts), options.batch_size):
            batch = texts[start : start + options.batch_size]
            tick = time.perf_counter()
            encoder.encode_texts(batch)
            seconds += time.perf_counter() - tick
            items += len(batch)
    return items, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dataset", default="wn9-img")
    parser.add_argument("--model", default="lite")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--keep", type=Path, help="Keep the benchmark's store here.")
    args = parser.parse_args(argv)

    graph = read_graph(graph_dir(args.data_dir, args.dataset))
    tick = time.perf_counter()
    encoder = build_encoder(args.model, device=args.device)
    info = encoder.info
    print(
        f"{args.model} on {encoder.device} ({encoder.precision_name}), built in "
        f"{time.perf_counter() - tick:.1f} s; dims {info.dims}; torch threads "
        f"{torch.get_num_threads()}"
    )
    options = EncodeOptions(batch_size=args.batch_size, workers=args.workers, progress=False)
    # warm the model up once so neither measurement pays for first-call initialisation
    encoder.encode_texts(["warm up"] * 2)
    if encoder.image_transform is not None:
        size = encoder.image_transform(Image.new("RGB", (64, 64))).shape
        encoder.encode_images(torch.zeros(2, *size))

    store = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    try:
        tick = time.perf_counter()
        results = {r.modality: r for r in encode_graph(graph, encoder, store, options, log=print)}
        total = time.perf_counter() - tick
        print(f"\nend to end: {total:.1f} s (workers {options.num_workers})")
        header = f"{'modality':<14}{'items':>7}{'e2e/s':>10}{'bare/s':>10}{'ratio':>8}{'busy':>7}"
        print(f"{header}{'rows':>7}")
        for modality, bare in ((IMAGE, bare_images), (TEXT, bare_texts)):
            result = results.get(modality)
            if result is None or not result.inputs:
                continue
            items, seconds = bare(encoder, options.plan(graph, modality), options)
            bare_rate = items / seconds
            print(
                f"{modality:<14}{result.inputs:>7}{result.items_per_second:>10.1f}"
                f"{bare_rate:>10.1f}{result.items_per_second / bare_rate:>8.2f}"
                f"{result.model_seconds / result.seconds:>7.2f}{result.rows_written:>7}"
            )
        print("\nfeature-store load (best of 5 / with sha256 verification):")
        for modality in results:
            if not (store / modality / "manifest.json").is_file():
                continue
            times = []
            for _ in range(5):
                tick = time.perf_counter()
                table = load_features(store / modality)
                times.append(time.perf_counter() - tick)
            tick = time.perf_counter()
            load_features(store / modality, verify=True)
            verified = time.perf_counter() - tick
            print(
                f"  {modality:<14} {tuple(table.values.shape)!s:<14} "
                f"{min(times) * 1e3:7.1f} ms (median {statistics.median(times) * 1e3:.1f}) / "
                f"{verified * 1e3:.1f} ms"
            )
        if args.keep:
            shutil.copytree(store, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

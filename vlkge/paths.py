"""Where each stage reads and writes under the data directory (GUIDE §1)."""

from __future__ import annotations

import re
from pathlib import Path


def dataset_slug(dataset: str) -> str:
    """Directory name of a dataset: ``custom:my graph`` → ``custom-my-graph``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.strip()).strip("-")
    if not slug:
        raise ValueError(f"empty dataset name {dataset!r}")
    return slug


def dataset_dir(data_dir: str | Path, dataset: str) -> Path:
    return Path(data_dir) / dataset_slug(dataset)


def raw_dir(data_dir: str | Path, dataset: str) -> Path:
    return dataset_dir(data_dir, dataset) / "raw"


def graph_dir(data_dir: str | Path, dataset: str) -> Path:
    return dataset_dir(data_dir, dataset) / "graph"


def features_dir(data_dir: str | Path, dataset: str) -> Path:
    return dataset_dir(data_dir, dataset) / "features"


def models_dir(data_dir: str | Path, dataset: str) -> Path:
    return dataset_dir(data_dir, dataset) / "models"

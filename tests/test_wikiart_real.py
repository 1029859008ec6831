"""WikiArt-MKG v1 built from the real scrape (the data mirror's wikiart/): relations, split, leakage."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from vlkge.pipeline import wikiart

from tests.conftest import MIRROR

SCRAPE = MIRROR / "wikiart" / "wikiart_scrape_yangyuwang"
pytestmark = pytest.mark.mirror


@pytest.fixture(scope="module")
def v1() -> SimpleNamespace:
    if not (SCRAPE / "artist_data_new.csv").is_file():
        pytest.skip(f"WikiArt scrape not found at {SCRAPE}")
    params = {"clean": {}}
    spec = wikiart.wikiart_spec(params)
    csvs = sorted((SCRAPE / "artwork_data").glob("*.csv"))
    tables = wikiart.build_wikiart(
        csvs, SCRAPE / "artist_data_new.csv", [], SCRAPE, list(wikiart.V1_RELATIONS), spec, seed=42
    )
    graph = wikiart.assemble_wikiart(tables, params)
    return SimpleNamespace(**vars(graph), protocol=tables.protocol, report=tables.report)


def test_real_v1_counts_and_no_leak(v1: SimpleNamespace) -> None:
    assert v1.relations["key"].to_list() == list(wikiart.V1_RELATIONS)
    bad = v1.report["bad_input"]
    assert bad["rows"] == 206_011 and bad["duplicate_url_rows"] == 206_011 - 174_353
    assert bad["artists_referenced_not_described"] > 0
    artworks = v1.entities.filter(pl.col("type") == "artwork").height
    assert 170_000 < artworks <= 174_353
    tri = v1.triples
    train = tri.filter(pl.col("split") == "train")
    held = tri.filter(pl.col("split") != "train")["head"].unique().to_numpy()
    seen = np.union1d(train["head"].to_numpy(), train["tail"].to_numpy())
    assert len(held) > 30_000 and not np.isin(held, seen).any()
    # every attribute kept is seen at least min_count times
    counts = tri.group_by("tail").len()
    assert counts["len"].min() >= 10
    assert v1.protocol["candidate_pools"] == "per_relation" and v1.protocol["directions"] == "tail"
    # the slug's appended creation date (the isCreatedInYear label) is not in artwork names
    names = v1.entities.filter(pl.col("type") == "artwork")["name"]
    assert names.str.contains(r" \d{4}$").mean() < 0.01

"""The WikiArt-MKG adapters on small scrape-shaped fixtures (tests/fixtures/wikiart_scrape)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from PIL import Image
from vlkge.pipeline import adapter_for, wikiart
from vlkge.pipeline.dates import death_year_of, year_bin, year_of
from vlkge.pipeline.places import country_of
from vlkge.pipeline.wikiart import artwork_title

from vlkge.config import default_params
from vlkge.evaluation import evaluate
from vlkge.graph import Graph, read_graph
from vlkge.model import build_model

FIXTURE = Path(__file__).parent / "fixtures" / "wikiart_scrape"
LINKS = set(wikiart.ARTIST_LINKS)


def params(**wikiart_spec: Any) -> dict[str, Any]:
    p = default_params()
    p["clean"]["wikiart"].update(
        {"min_count": 3, "valid_fraction": 0.2, "test_fraction": 0.2, "inverse": True, **wikiart_spec}
    )
    return p


def build(ds: Path, source: Path, dataset: str = "wikiart-v2", **spec: Any) -> Graph:
    adapter = adapter_for(dataset)
    p = params(**spec)
    adapter.crawl(dataset, str(source), ds / "raw", p)
    return adapter.clean(dataset, ds / "raw", ds / "graph", p)


def source_with_images(base: Path) -> Path:
    """The fixture scrape plus an images/ folder in the three accepted layouts, a broken image
    and one that matches no artwork."""
    src = base / "scrape"
    shutil.copytree(FIXTURE, src)
    images = src / "images"
    for rel in ("Realism/anna-alpha_work-anna-0.jpg", "bruno-beta/work-bruno-1.jpg", "work-carla-2.jpg"):
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (200, 30, 30)).save(images / rel)
    (images / "dora-delta").mkdir()
    (images / "dora-delta" / "work-dora-0.jpg").write_bytes(b"not a jpeg at all")
    Image.new("RGB", (8, 8)).save(images / "nobody_unknown.jpg")
    return src


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    base = tmp_path_factory.mktemp("wikiart")
    return build(base / "wikiart-v2", source_with_images(base))


def key_triples(graph: Graph) -> dict[str, set[tuple[str, str, str]]]:
    ents, rels = graph.entity_keys, graph.relation_keys
    return {
        split: {(ents[h], rels[r], ents[t]) for h, r, t in arr.tolist()}
        for split, arr in graph.triples.items()
    }


def test_relations_are_the_papers(v2: Graph) -> None:
    expected = set(wikiart.all_relations())
    assert set(v2.relation_keys) <= expected
    for rel in ("isCreatedByArtist", "hasStyle", "isCreatedInYear", "isPupilOf", "isTeacherOf"):
        assert rel in v2.relation_keys
    triples = set().union(*key_triples(v2).values())
    assert ("artist:bruno-beta", "isPupilOf", "artist:anna-alpha") in triples
    assert ("artist:anna-alpha", "isTeacherOf", "artist:bruno-beta") in triples
    assert ("artwork:anna-alpha/work-anna-0", "hasStyle", "style:Realism") in triples


def test_bad_input_is_counted_not_fatal(v2: Graph) -> None:
    bad = v2.meta["clean"]["bad_input"]
    assert bad["duplicate_url_rows"] == 1
    assert bad["same_image_under_two_urls"] == 1
    assert bad["artworks_without_artist"] == 1
    assert bad["unparsable_artwork_dates"] == 5  # the "sometime" rows
    assert bad["artists_referenced_not_described"] == 1  # ghost-painter
    assert bad["unresolved_artist_names"] == 1  # "Nobody Known"
    assert bad["duplicate_artist_rows"] == 1
    assert bad["unparsable_artist_dates"] == 1  # "not a date"
    assert bad["images_that_do_not_open"] == 1
    keys = set(v2.entity_keys)
    assert "artwork:anna-alpha/work-anna-1-copy" not in keys
    assert "artwork:https://www.wikiart.org/en/lonely-work" in keys  # kept, without an artist
    ghost = v2.entities.filter(pl.col("key") == "artist:ghost-painter").row(0, named=True)
    assert ghost["name"] == "Ghost Painter" and ghost["text"] == "Ghost Painter"


def test_images_in_all_layouts_and_modalities(v2: Graph) -> None:
    images = {r["key"]: r["images"] for r in v2.entities.iter_rows(named=True)}
    for key in ("anna-alpha/work-anna-0", "bruno-beta/work-bruno-1", "carla-gamma/work-carla-2"):
        assert len(images[f"artwork:{key}"]) == 1
        assert (v2.root.parent / images[f"artwork:{key}"][0]).is_file()
    assert images["artwork:dora-delta/work-dora-0"] == []  # does not open
    by_type = v2.meta["clean"]["modalities_by_type"]
    assert by_type["artwork"]["image"] == 3 and by_type["artwork"]["text"] == 0
    assert by_type["artist"]["text"] == by_type["artist"]["count"]
    orphans = v2.meta["clean"]["without_modality_or_structure"]
    held_out = v2.meta["clean"]["split"]["held_out_artworks"]
    assert 0 < orphans["count"] <= held_out["valid"] + held_out["test"]


@pytest.fixture(scope="module")
def v2_all(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    """No attribute dropped (min_count 1)."""
    return build(tmp_path_factory.mktemp("wikiart_all") / "wikiart-v2", FIXTURE, min_count=1)


def test_dates_and_places(v2_all: Graph) -> None:
    triples = set().union(*key_triples(v2_all).values())
    assert ("artist:anna-alpha", "wasBornOnDate", "date:1800-1849") in triples
    assert ("artist:bruno-beta", "diedOnDate", "date:2000-2049") in triples  # 21-Feb-11 after 1923
    assert ("artist:anna-alpha", "wasBornIn", "country:France") in triples
    assert ("artwork:anna-alpha/work-anna-1", "isLocatedIn", "country:United States") in triples
    assert ("artist:emil-epsilon", "wasBornOnDate", "date:1400 BC-1351 BC") in triples
    assert not any(t.startswith("country:Private") for _, _, t in triples)
    assert ("artist:anna-alpha", "hasNationality", "nationality:French") in triples


def test_rare_attributes_dropped(v2: Graph) -> None:
    triples = set().union(*key_triples(v2).values())
    tails = {t for _, _, t in triples}
    assert "nationality:French" not in tails  # seen once < min_count 3
    assert v2.meta["clean"]["dropped"]["rare_attribute_triples"]["hasNationality"] == 5
    years = {t for _, r, t in triples if r == "isCreatedInYear"}
    assert years and all(t.startswith("year:18") or t.startswith("year:19") for t in years)


def test_protocol_in_meta(v2: Graph) -> None:
    proto = v2.protocol
    assert proto["directions"] == "tail" and proto["candidate_pools"] == "per_relation"
    assert proto["inductive"] is True
    assert set(proto["excluded_relations"]) == {
        "isRelatedToArtwork",
        "isRelatedToArtist",
        "hasCreatedArtwork",
    }
    assert proto["relation_downsampling"] == {"isRelatedToArtwork": 0.001}


def test_inductive_split_leaks_nothing(v2: Graph) -> None:
    by_split = key_triples(v2)
    train_entities = {e for h, _, t in by_split["train"] for e in (h, t)}
    attributes = {a.relation for a in wikiart.ARTWORK_ATTRIBUTES}
    held_out = {h for s in ("valid", "test") for h, r, _ in by_split[s] if r in attributes}
    assert held_out and not held_out & train_entities
    link_train = {e for h, r, t in by_split["train"] if r in LINKS for e in (h, t)}
    for split in ("valid", "test"):
        ends = [(h, t) for h, r, t in by_split[split] if r in LINKS]
        # every held-out link has an artist that occurs in no train artist → artist link
        assert all(h not in link_train or t not in link_train for h, t in ends)
    assert v2.meta["clean"]["split"]["disjoint_artist_sets"]["test"] >= 1


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = build(tmp_path / "a", FIXTURE)
    b = build(tmp_path / "b", FIXTURE)
    assert key_triples(a) == key_triples(b)
    assert a.entity_keys == b.entity_keys
    p = params()
    p["seed"] = 7
    adapter = adapter_for("wikiart-v2")
    adapter.crawl("wikiart-v2", str(FIXTURE), tmp_path / "c" / "raw", p)
    c = adapter.clean("wikiart-v2", tmp_path / "c" / "raw", tmp_path / "c" / "graph", p)
    assert key_triples(c)["test"] != key_triples(a)["test"]


def test_v1_keeps_the_four_relations(tmp_path: Path) -> None:
    g = build(tmp_path / "v1", FIXTURE, dataset="wikiart-v1")
    assert g.relation_keys == list(wikiart.V1_RELATIONS)
    assert g.protocol["excluded_relations"] == []


def test_evaluation_follows_the_protocol(v2: Graph) -> None:
    p = default_params()
    p["model"]["dim"] = 8
    model = build_model(p, v2.num_entities, v2.num_relations)
    result = evaluate(model, read_graph(v2.root), "test")
    assert "head" not in result and result["tail"]["count"] == result["overall"]["count"]
    assert not set(result["per_relation"]) & set(v2.protocol["excluded_relations"])
    assert result["setup"]["candidate_pools"] == "per_relation"


@pytest.mark.parametrize(
    ("text", "year"),
    [("1575", 1575), ("c.1575", 1575), ("1390 BC", -1390), ("December 27, 1802", 1802), ("24-Jan-74", 1974)],
)
def test_year_of(text: str, year: int) -> None:
    assert pl.select(year_of(pl.lit(text))).item() == year


def test_death_years_bins_and_countries() -> None:
    frame = pl.DataFrame({"d": ["21-Feb-11", "7-Feb-73", "junk"], "b": [1923, 1903, 1800]})
    deaths = frame.select(death_year_of(pl.col("d"), pl.col("b")).alias("y"))["y"].to_list()
    assert deaths == [2011, 1973, None]
    bins = pl.select(year_bin(pl.lit(-370), 50).alias("a"), year_bin(pl.lit(1888), 10).alias("b")).row(0)
    assert bins == ("400 BC-351 BC", "1880-1889")
    places = pl.Series(["Louvre, Paris, France", "Tate, London, UK", "Private Collection", None])
    assert places.to_frame("p").select(country_of(pl.col("p")))["p"].to_list() == [
        "France",
        "United Kingdom",
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("slug", "title"),
    [
        ("naked-lunch-1994", "naked lunch"),
        ("untitled-c-1959", "untitled"),
        ("study-of-a-girl-c-1880-82", "study of a girl"),
        ("rain-2006-1", "rain"),
        ("utopia-study-5-c-1975", "utopia study 5"),
        ("composition-no-128", "composition no 128"),
        ("1984", "1984"),  # a title that is only a year stays
    ],
)
def test_artwork_title_drops_the_appended_creation_date(slug: str, title: str) -> None:
    assert pl.select(artwork_title(pl.lit(slug))).item() == title

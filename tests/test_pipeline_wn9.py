"""The ``wn9-img`` adapter: real WN9-IMG counts, CSV vs IKRL, images, text, sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vlkge.pipeline import adapter_for, wn9_img

from vlkge.config import default_params
from vlkge.errors import ConfigError, SourceError
from vlkge.fileio import sha256_file
from vlkge.graph import Graph

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "wn9_img"
needs_shared = pytest.mark.skipif(
    not (SHARED / "wn9_img_triples.csv").is_file(),
    reason=f"shared WN9-IMG data not found at {SHARED}",
)


def build(ds: Path, source: str | None, **overrides: Any) -> Graph:
    params = default_params()
    for section, values in overrides.items():
        params[section].update(values)
    adapter = adapter_for("wn9-img")
    adapter.crawl("wn9-img", source, ds / "raw", params)
    return adapter.clean("wn9-img", ds / "raw", ds / "graph", params)


def key_triples(graph: Graph) -> set[tuple[str, str, str, str]]:
    ents, rels = graph.entity_keys, graph.relation_keys
    return {
        (ents[h], rels[r], ents[t], split) for split, arr in graph.triples.items() for h, r, t in arr.tolist()
    }


@pytest.fixture(scope="module")
def csv_graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    if not (SHARED / "wn9_img_triples.csv").is_file():
        pytest.skip(f"shared WN9-IMG data not found at {SHARED}")
    return build(tmp_path_factory.mktemp("wn9csv") / "wn9-img", str(SHARED))


@needs_shared
def test_counts_from_the_paper_csv(csv_graph: Graph) -> None:
    summary = csv_graph.summary()
    assert summary["entities"] == 6555 and summary["relations"] == 9
    assert summary["triples"] == {"train": 11741, "valid": 1337, "test": 1319}
    assert summary["modalities"] == {"text": 6555, "image": 399, "both": 399, "none": 0}
    assert csv_graph.meta["inputs"]["files"]["wn9_img_triples.csv"] == wn9_img.PUBLIC_TRIPLES_SHA256
    assert csv_graph.meta["inputs"]["images"] == 399
    assert csv_graph.meta["clean"]["warnings"] == []


@needs_shared
def test_entity_text_and_images(csv_graph: Graph) -> None:
    rows = {r["key"]: r for r in csv_graph.entities.iter_rows(named=True)}
    goldfish = rows["n01443537"]
    assert goldfish["name"] == "goldfish"
    assert goldfish["text"].startswith("goldfish: ")
    assert goldfish["images"] == ["raw/images/n01443537.JPEG"]
    assert goldfish["type"] is None
    img = csv_graph.root.parent / goldfish["images"][0]
    assert img.read_bytes() == (SHARED / "images_imagenet1k_sample" / "n01443537.JPEG").read_bytes()


@needs_shared
def test_ikrl_release_gives_the_same_graph(tmp_path: Path, csv_graph: Graph) -> None:
    src = tmp_path / "ikrl_only"  # the IKRL files and the text, no CSV, no images
    src.mkdir()
    (src / "ikrl_raw").symlink_to(SHARED / "ikrl_raw")
    (src / "text").symlink_to(SHARED / "text")
    graph = build(tmp_path / "wn9-img", str(src))
    assert key_triples(graph) == key_triples(csv_graph)
    assert graph.summary()["entities"] == 6555
    assert graph.summary()["modalities"]["image"] == 0  # no image directory given


@needs_shared
def test_pinned_hash_matches_the_shared_csv() -> None:
    assert sha256_file(SHARED / "wn9_img_triples.csv") == wn9_img.PUBLIC_TRIPLES_SHA256


# ----------------------------------------------------------------- a tiny WN9-shaped dump

TINY_TRIPLES = (
    "head,relation,tail,mode\r\n"
    "n001,_hypernym,n002,train\r\n"
    "n002,_hyponym,n001,train\r\n"
    "n003,_hypernym,n002,train\r\n"
    "n003,_hypernym,n001,val\r\n"
    "n001,_hyponym,n003,test\r\n"
)
TINY_TEXT = (
    "entity\tname\tlemmas\tdefinition\n"
    "n001\tdog\tdog|domestic dog\ta member of the genus Canis\n"
    'n002\tcanine\tcanine|canid\ta "dog-like" carnivore\n'
    "n003\tpuppy\tpuppy\ta young dog\n"
)


def tiny_source(root: Path, *, images: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "wn9_img_triples.csv").write_text(TINY_TRIPLES, newline="")
    (root / "text").mkdir()
    (root / "text" / "wn9_entity_text_wordnet30.tsv").write_text(TINY_TEXT)
    for rel, data in (images or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_image_file_patterns(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    src = tiny_source(tmp_path / "src")
    for rel in ("n001.JPEG", "n001_2.jpg", "n001_10.png", "n002/a.JPEG", "n002/b.jpeg",
                "n003.gif", "n999.JPEG", "index.tsv"):  # fmt: skip
        (pics / rel).parent.mkdir(parents=True, exist_ok=True)
        (pics / rel).write_bytes(rel.encode())
    graph = build(tmp_path / "wn9-img", str(src), crawl={"images": str(pics)})
    images = dict(zip(graph.entity_keys, graph.entities["images"].to_list(), strict=True))
    assert images == {
        "n001": ["raw/images/n001.JPEG", "raw/images/n001_10.png", "raw/images/n001_2.jpg"],
        "n002": ["raw/images/n002/a.JPEG", "raw/images/n002/b.jpeg"],
        "n003": [],
    }


def test_default_image_dir_inside_source(tmp_path: Path) -> None:
    src = tiny_source(tmp_path / "src", images={"images_imagenet1k_sample/n003.JPEG": b"puppy"})
    graph = build(tmp_path / "wn9-img", str(src))
    assert graph.summary()["modalities"] == {"text": 3, "image": 1, "both": 1, "none": 0}


def test_text_template(tmp_path: Path) -> None:
    src = tiny_source(tmp_path / "src")
    graph = build(tmp_path / "a" / "wn9-img", str(src))
    texts = dict(zip(graph.entity_keys, graph.entities["text"].to_list(), strict=True))
    assert texts["n002"] == 'canine: a "dog-like" carnivore'  # quotes read literally
    assert graph.relation_keys == ["_hypernym", "_hyponym"]
    assert graph.triples["valid"].shape == (1, 3)
    graph = build(tmp_path / "b" / "wn9-img", str(src), clean={"text_template": "{name} ({lemmas})"})
    assert graph.entities["text"][0] == "dog (dog|domestic dog)"
    with pytest.raises(ConfigError, match="gloss") as err:
        build(tmp_path / "c" / "wn9-img", str(src), clean={"text_template": "{gloss}"})
    assert "clean.text_template" in str(err.value) and "{definition}" in str(err.value)


def test_missing_text_says_there_is_no_public_url(tmp_path: Path) -> None:
    src = tiny_source(tmp_path / "src")
    (src / "text" / "wn9_entity_text_wordnet30.tsv").unlink()
    with pytest.raises(SourceError, match="no public URL") as err:
        build(tmp_path / "wn9-img", str(src))
    assert "wn9_entity_text_wordnet30.tsv" in str(err.value)


def test_public_url_download_is_verified(tmp_path: Path, monkeypatch) -> None:
    """No source, no mirror: the pinned public URL is fetched and checked (here a file:// URL)."""
    monkeypatch.setenv("VLKGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VLKGE_DATA_MIRROR", raising=False)
    src = tiny_source(tmp_path / "src")
    url = (src / "wn9_img_triples.csv").as_uri()
    monkeypatch.setattr(wn9_img, "PINNED", {"url": url, "sha256": "0" * 64})
    with pytest.raises(SourceError, match="sha256 mismatch"):
        build(tmp_path / "wn9-img", None)
    good = sha256_file(src / "wn9_img_triples.csv")
    monkeypatch.setattr(wn9_img, "PINNED", {"url": url, "sha256": good})
    # the download is fine, but the entity text has no public URL: a clear error says so
    with pytest.raises(SourceError, match="no public URL"):
        build(tmp_path / "wn9-img", None)


def test_env_mirror_finds_the_dump(tmp_path: Path, monkeypatch) -> None:
    tiny_source(tmp_path / "mirror" / "wn9_img")
    monkeypatch.setenv("VLKGE_DATA_MIRROR", str(tmp_path / "mirror"))
    graph = build(tmp_path / "wn9-img", None)
    assert graph.entity_keys == ["n001", "n002", "n003"]

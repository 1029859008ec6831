"""The ``wn9-img`` adapter: real WN9-IMG counts (the packaged paper CSV and WordNet text, the test
photos), CSV vs IKRL, images, text from WordNet 3.0, sources (packaged, mirror, public URLs
through a local HTTP server)."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from vlkge.pipeline import adapter_for, wikiart, wn9_img, wordnet
from vlkge.pipeline.dumps import Derived, Dump, Pin, dump_dir

from tests.conftest import MIRROR, PHOTOS, WN9_FIXTURE
from tests.http_mirror import serve
from vlkge.config import default_params
from vlkge.errors import ConfigError, InputError, SourceError
from vlkge.fileio import sha256_file
from vlkge.graph import Graph

DEBIAN_WORDNET = Path("/usr/share/wordnet/data.noun")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLKGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VLKGE_DATA_MIRROR", raising=False)


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
    """The full WN9-IMG from the package's own copy of the paper CSV and the WordNet text, with
    the 12 test photos."""
    base = tmp_path_factory.mktemp("wn9csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLKGE_CACHE", str(base / "cache"))
        return build(base / "wn9-img", "packaged", crawl={"images": str(PHOTOS)})


def test_counts_from_the_paper_csv(csv_graph: Graph) -> None:
    summary = csv_graph.summary()
    assert summary["entities"] == 6555 and summary["relations"] == 9
    assert summary["triples"] == {"train": 11741, "valid": 1337, "test": 1319}
    assert summary["modalities"] == {"text": 6555, "image": 12, "both": 12, "none": 0}
    assert csv_graph.meta["inputs"]["files"]["wn9_img_triples.csv"] == wn9_img.PUBLIC_TRIPLES_SHA256
    assert csv_graph.meta["inputs"]["files"][wn9_img.TEXT_TSV] == wn9_img.TEXT_SHA256
    assert csv_graph.meta["inputs"]["images"] == 12
    assert csv_graph.meta["clean"]["warnings"] == []
    assert csv_graph.meta["clean"]["unseen"] == "drop"  # clean.unseen unset: the paper's transductive setting


def test_entity_text_and_images(csv_graph: Graph) -> None:
    rows = {r["key"]: r for r in csv_graph.entities.iter_rows(named=True)}
    goldfish = rows["n01443537"]
    assert goldfish["name"] == "goldfish"
    assert goldfish["text"].startswith("goldfish: ")
    assert goldfish["images"] == ["raw/images/n01443537.JPEG"]
    assert goldfish["type"] is None
    img = csv_graph.root.parent / goldfish["images"][0]
    assert img.read_bytes() == (PHOTOS / "n01443537.JPEG").read_bytes()


def test_ikrl_release_gives_the_same_graph(tmp_path: Path) -> None:
    csv_graph = build(tmp_path / "csv" / "wn9-img", str(WN9_FIXTURE))
    src = tmp_path / "ikrl_only"  # the IKRL files and the text, no CSV, no images
    src.mkdir()
    (src / "ikrl_raw").symlink_to(WN9_FIXTURE / "ikrl_raw")
    (src / "text").symlink_to(WN9_FIXTURE / "text")
    graph = build(tmp_path / "wn9-img", str(src))
    assert key_triples(graph) == key_triples(csv_graph) and len(key_triples(graph)) > 80
    assert graph.summary()["entities"] == csv_graph.summary()["entities"]
    assert csv_graph.summary()["modalities"]["image"] == 12
    assert graph.summary()["modalities"]["image"] == 0  # no image directory given


def test_packaged_copies_are_the_pinned_files(tmp_path: Path) -> None:
    root = wn9_img.packaged_source()
    assert sha256_file(root / wn9_img.TRIPLES_CSV) == wn9_img.PUBLIC_TRIPLES_SHA256
    assert sha256_file(root / wn9_img.TEXT_TSV) == wn9_img.TEXT_SHA256
    assert root.is_relative_to(tmp_path / "cache")
    assert len(wn9_img.entity_order()) == 6555


def fixture_text_rows() -> list[str]:
    return (WN9_FIXTURE / "text" / "wn9_entity_text_wordnet30.tsv").read_text(encoding="utf-8").splitlines()


def test_text_from_a_real_slice_of_wordnet_equals_the_mirror_rows() -> None:
    rows = fixture_text_rows()
    entities = [line.split("\t", 1)[0] for line in rows[1:]]
    derived = wordnet.entity_text(WN9_FIXTURE / "wordnet" / "data.noun", entities)
    assert derived.splitlines() == rows
    assert any('""' in line for line in rows)  # a gloss with quoted examples, quoted as csv writes it


def test_text_from_wordnet_names_a_missing_synset() -> None:
    with pytest.raises(InputError, match="n99999999") as err:
        wordnet.entity_text(WN9_FIXTURE / "wordnet" / "data.noun", ["n01443537", "n99999999"])
    assert "data.noun" in str(err.value)


@pytest.mark.skipif(
    not DEBIAN_WORDNET.is_file(), reason="WordNet 3.0 not installed (apt-get install wordnet-base)"
)
def test_text_from_debian_wordnet_equals_the_packaged_text_byte_for_byte() -> None:
    derived = wordnet.entity_text(DEBIAN_WORDNET, wn9_img.entity_order()).encode("utf-8")
    assert hashlib.sha256(derived).hexdigest() == wn9_img.TEXT_SHA256
    packaged = wn9_img.packaged_source() / wn9_img.TEXT_TSV
    assert derived == packaged.read_bytes()
    mirrored = MIRROR / "wn9_img" / wn9_img.TEXT_TSV
    if mirrored.is_file():
        assert derived == mirrored.read_bytes()


@pytest.mark.mirror
def test_every_pin_matches_the_mirror() -> None:
    """The pinned sha256s (checked against the public repositories' git blobs when they were
    pinned) are those of the mirror's files."""
    dumps = {"wn9_img": wn9_img.public_dump(), "wikiart": wikiart.public_dump()}
    checked = 0
    for name, dump in dumps.items():
        for pin in (*dump.pins, *(Pin(d.path, "", d.sha256) for d in dump.derived)):
            file = MIRROR / name / pin.path
            assert file.is_file(), file
            assert sha256_file(file) == pin.sha256, file
            assert pin.size is None or file.stat().st_size == pin.size
            checked += 1
    assert checked == 401 + 45


def public_dump_of_fixtures(base: str, www: Path) -> Dump:
    """The WN9 fixture laid out at ``www`` as its public sources are (the CSV, a WordNet 3.0
    archive holding the fixture's slice of dict/data.noun, the photos under their upstream
    names) and a Dump pinning them at ``base``: the real adapter code, smaller files."""
    (www / "vl-kge").mkdir(parents=True)
    shutil.copy(WN9_FIXTURE / "wn9_img_triples.csv", www / "vl-kge" / "wn9_img_triples.csv")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:bz2") as tar:
        tar.add(WN9_FIXTURE / "wordnet" / "data.noun", arcname="WordNet-3.0/dict/data.noun")
    (www / "WordNet-3.0.tar.bz2").write_bytes(archive.getvalue())
    photos = []
    for photo in sorted(PHOTOS.glob("*.JPEG")):
        upstream = www / "imagenet-sample-images" / f"{photo.stem}_photo.JPEG"
        upstream.parent.mkdir(exist_ok=True)
        shutil.copy(photo, upstream)
        rel = f"{wn9_img.DEFAULT_IMAGE_DIR}/{photo.name}"
        photos.append(
            Pin(
                rel,
                f"{base}/imagenet-sample-images/{upstream.name}",
                sha256_file(photo),
                photo.stat().st_size,
            )
        )

    def pin(rel: str, url_path: str, use: str = "input") -> Pin:
        data = (www / url_path).read_bytes()
        return Pin(rel, f"{base}/{url_path}", hashlib.sha256(data).hexdigest(), len(data), use)

    triples = pin(wn9_img.TRIPLES_CSV, "vl-kge/wn9_img_triples.csv")
    source = pin(wn9_img.WORDNET_ARCHIVE, "WordNet-3.0.tar.bz2", "source")
    text_sha = sha256_file(WN9_FIXTURE / "text" / "wn9_entity_text_wordnet30.tsv")
    text = Derived(wn9_img.TEXT_TSV, text_sha, (source,), wn9_img._text_from_wordnet, "WordNet 3.0")
    return Dump("wn9_img", (triples, *photos), (text,), wn9_img.packaged_source)


def test_download_path_end_to_end_through_a_local_server(tmp_path: Path, monkeypatch) -> None:
    """No source, no mirror: the adapter fetches every pinned file (one photo's transfer cut
    half-way and resumed), makes the text from the WordNet archive, and builds the graph."""
    www = tmp_path / "www"
    entities = [line.split("\t", 1)[0] for line in fixture_text_rows()[1:]]
    monkeypatch.setattr(wn9_img, "entity_order", lambda: entities)
    with serve(www) as server:
        dump = public_dump_of_fixtures(server.url, www)
        monkeypatch.setattr(wn9_img, "public_dump", lambda: dump)
        cut = "/imagenet-sample-images/n02129165_photo.JPEG"
        server.cut[cut] = 2000
        graph = build(tmp_path / "wn9-img", None)
    assert key_triples(graph) == key_triples(build(tmp_path / "fixture" / "wn9-img", str(WN9_FIXTURE)))
    assert graph.summary()["modalities"]["image"] == 12
    root = dump_dir(dump)
    assert (root / wn9_img.TEXT_TSV).read_bytes() == (WN9_FIXTURE / wn9_img.TEXT_TSV).read_bytes()
    assert [r for r in server.requests if r[0] == cut] == [(cut, None), (cut, "bytes=2000-")]
    requests = len(server.requests)
    with serve(www) as again:  # a second crawl reads the verified cache: nothing fetched
        monkeypatch.setattr(wn9_img, "public_dump", lambda: dump)
        build(tmp_path / "again" / "wn9-img", None)
        assert again.requests == [] and requests > 12


def test_download_path_offline_names_every_missing_file(tmp_path: Path, monkeypatch) -> None:
    www = tmp_path / "www"
    with serve(www) as server:
        dump = public_dump_of_fixtures(server.url, www)
    monkeypatch.setattr(wn9_img, "public_dump", lambda: dump)  # the server is gone
    with pytest.raises(SourceError) as err:
        build(tmp_path / "wn9-img", None)
    message = str(err.value)
    assert "14 file(s) of the wn9_img dump could not be fetched" in message  # CSV, archive, 12 photos
    listing = list(csv.reader((dump_dir(dump) / "MISSING.tsv").open(), delimiter="\t"))
    assert {row[0] for row in listing[1:]} == {p.path for p in dump.pins} | {wn9_img.WORDNET_ARCHIVE}
    assert all(
        row[1].startswith(server.url) and row[2].startswith(str(dump_dir(dump))) for row in listing[1:]
    )


def test_packaged_source_with_photos_from_the_cache(tmp_path: Path) -> None:
    photos = dump_dir(wn9_img.public_dump()) / wn9_img.DEFAULT_IMAGE_DIR
    shutil.copytree(PHOTOS, photos)
    graph = build(tmp_path / "wn9-img", "packaged")
    assert graph.summary()["modalities"] == {"text": 6555, "image": 12, "both": 12, "none": 0}
    assert graph.meta["inputs"]["source"] == str(wn9_img.packaged_source())


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


def test_missing_text_says_where_to_get_it(tmp_path: Path) -> None:
    src = tiny_source(tmp_path / "src")
    (src / "text" / "wn9_entity_text_wordnet30.tsv").unlink()
    with pytest.raises(SourceError, match="entity text not found") as err:
        build(tmp_path / "wn9-img", str(src))
    assert "wn9_entity_text_wordnet30.tsv" in str(err.value) and "--source packaged" in str(err.value)


def test_env_mirror_finds_the_dump(tmp_path: Path, monkeypatch) -> None:
    tiny_source(tmp_path / "mirror" / "wn9_img")
    monkeypatch.setenv("VLKGE_DATA_MIRROR", str(tmp_path / "mirror"))
    graph = build(tmp_path / "wn9-img", None)
    assert graph.entity_keys == ["n001", "n002", "n003"]

"""The ``custom`` adapter and the generic checks of ``vlkge.pipeline.assemble`` on bad user input."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from vlkge.pipeline import adapter_for

from vlkge.config import default_params
from vlkge.errors import ConfigError, InputError, SourceError
from vlkge.fileio import sha256_file
from vlkge.graph import Graph, read_graph

TRIPLES = """head,relation,tail,mode
a,r1,b,train
b,r1,c,train
c,r2,a,train
a,r2,c,train
a,r1,c,val
b,r2,a,test
"""
ENTITIES = """entity,text,image
a,Alpha,images/a.jpg
b,Beta,
c,,images/c1.png|images/c2.png
"""
DATASET = "custom:toy"


def write_input(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return root


def toy_input(root: Path, **overrides: str | bytes | None) -> Path:
    files: dict[str, str | bytes | None] = {
        "triples.csv": TRIPLES,
        "entities.csv": ENTITIES,
        "images/a.jpg": b"\xff\xd8a",
        "images/c1.png": b"\x89PNGc1",
        "images/c2.png": b"\x89PNGc2",
        **overrides,
    }
    return write_input(root, {k: v for k, v in files.items() if v is not None})


def params(**clean: Any) -> dict[str, Any]:
    p = default_params()
    p["clean"].update(clean)
    return p


def build(tmp_path: Path, src: Path, **clean: Any) -> Graph:
    adapter = adapter_for(DATASET)
    ds = tmp_path / "data" / "custom-toy"
    p = params(**clean)
    adapter.crawl(DATASET, str(src), ds / "raw", p)
    return adapter.clean(DATASET, ds / "raw", ds / "graph", p)


def key_triples(graph: Graph) -> set[tuple[str, str, str, str]]:
    ents, rels = graph.entity_keys, graph.relation_keys
    return {
        (ents[h], rels[r], ents[t], split) for split, arr in graph.triples.items() for h, r, t in arr.tolist()
    }


def test_good_input(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = toy_input(tmp_path / "in")
    with caplog.at_level(logging.WARNING, logger="vlkge.pipeline"):
        graph = build(tmp_path, src)
    assert not caplog.records
    assert graph.entity_keys == ["a", "b", "c"]  # entity-table order
    assert graph.relation_keys == ["r1", "r2"]  # first appearance in triples
    assert {s: len(a) for s, a in graph.triples.items()} == {"train": 4, "valid": 1, "test": 1}
    rows = {r["key"]: r for r in graph.entities.iter_rows(named=True)}
    assert rows["a"]["text"] == "Alpha" and rows["c"]["text"] is None
    assert rows["a"]["name"] == "a"  # name defaults to the key
    assert rows["c"]["images"] == ["raw/images/c1.png", "raw/images/c2.png"]
    assert rows["b"]["images"] == []
    ds = tmp_path / "data" / "custom-toy"
    assert (ds / rows["a"]["images"][0]).read_bytes() == b"\xff\xd8a"
    meta = json.loads((ds / "graph" / "meta.json").read_text())
    assert meta["dataset"] == DATASET
    assert meta["inputs"]["files"]["triples.csv"] == sha256_file(src / "triples.csv")
    assert meta["inputs"]["images"] == 3
    assert meta["protocol"]["inductive"] is False
    assert graph.summary()["modalities"] == {"text": 2, "image": 2, "both": 1, "none": 0}


def test_split_files_give_the_same_graph(tmp_path: Path) -> None:
    csv_graph = build(tmp_path / "csv", toy_input(tmp_path / "in_csv"))
    txt = {"train": [], "valid": [], "test": []}
    for line in TRIPLES.splitlines()[1:]:
        h, r, t, mode = line.split(",")
        txt["valid" if mode == "val" else mode].append(f"{h}\t{r}\t{t}\n")
    files = {f"{s}.txt": "".join(lines) for s, lines in txt.items()}
    src = toy_input(tmp_path / "in_txt", **{"triples.csv": None}, **files)
    assert key_triples(build(tmp_path / "txt", src)) == key_triples(csv_graph)


def test_crlf_bom_and_aliases_accepted(tmp_path: Path) -> None:
    triples = TRIPLES.replace("val\n", "Validation\n").replace("test\n", "TEST\n")
    data = b"\xef\xbb\xbf" + triples.replace("\n", "\r\n").encode()
    graph = build(tmp_path, toy_input(tmp_path / "in", **{"triples.csv": data}))
    assert {s: len(a) for s, a in graph.triples.items()} == {"train": 4, "valid": 1, "test": 1}
    assert "head" not in graph.entity_keys


def test_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    bad = TRIPLES.replace("c,r2,a,train", "c,r2,a,train,extra").replace("\n", "\r\n")
    src = toy_input(tmp_path / "in", **{"triples.csv": b"\xef\xbb\xbf" + bad.encode()})
    with pytest.raises(InputError, match="expected 4 fields") as err:
        build(tmp_path, src)
    assert f"{src / 'triples.csv'}:4" in str(err.value)


def test_line_numbers_count_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    entities = 'entity,text,image\n\na,"Alpha\nspans two lines",\nb,Beta\n'
    src = toy_input(tmp_path / "in", **{"entities.csv": entities})
    with pytest.raises(InputError) as err:
        build(tmp_path, src)
    assert f"{src / 'entities.csv'}:5" in str(err.value)
    # a bad record spanning lines 3-4 is reported at the line where it starts
    entities = 'entity,text,image\n\na,"Alpha\nspans two lines",,extra\nb,Beta,\n'
    src = toy_input(tmp_path / "in2", **{"entities.csv": entities})
    with pytest.raises(InputError) as err:
        build(tmp_path, src)
    assert f"{src / 'entities.csv'}:3" in str(err.value)


def test_missing_header_column(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": "head,relation,tail\na,r1,b\n"})
    with pytest.raises(InputError, match="mode") as err:
        build(tmp_path, src)
    assert "triples.csv:1" in str(err.value)


def test_unknown_split_label(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": TRIPLES.replace("b,r2,a,test", "b,r2,a,tset")})
    with pytest.raises(InputError, match="unknown split label 'tset'") as err:
        build(tmp_path, src)
    assert "triples.csv:7" in str(err.value)


def test_empty_key(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": TRIPLES.replace("b,r1,c,train", "b, ,c,train")})
    with pytest.raises(InputError, match="empty relation") as err:
        build(tmp_path, src)
    assert "triples.csv:3" in str(err.value)


def test_empty_train_split(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": TRIPLES.replace(",train", ",val")})
    with pytest.raises(InputError, match="no train triples"):
        build(tmp_path, src)


def test_entity_missing_from_entities_csv(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"entities.csv": "entity,text\na,Alpha\nb,Beta\n"})
    with pytest.raises(InputError, match="no row in the entity table") as err:
        build(tmp_path, src)
    assert "triples.csv:3" in str(err.value) and "'c'" in str(err.value)
    assert "allow_unlisted_entities" in str(err.value)
    graph = build(tmp_path, src, allow_unlisted_entities=True)
    c = graph.entities.filter(graph.entities["key"] == "c").row(0, named=True)
    assert c["text"] is None and c["images"] == []


def test_entities_csv_entity_without_triples(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"entities.csv": ENTITIES + "z,Zeta,\n"})
    with pytest.raises(InputError, match="occur in no triple") as err:
        build(tmp_path, src)
    assert "entities.csv:5" in str(err.value) and "'z'" in str(err.value)
    graph = build(tmp_path, src, allow_unlisted_entities=True)
    assert graph.entity_keys == ["a", "b", "c", "z"]


def test_duplicate_entity_row(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"entities.csv": ENTITIES + "a,Again,\n"})
    with pytest.raises(InputError, match="listed twice") as err:
        build(tmp_path, src)
    assert "entities.csv:5" in str(err.value) and "line 2" in str(err.value)


def test_duplicates_are_dropped_with_a_warning(tmp_path: Path, caplog) -> None:
    triples = TRIPLES + "b,r1,c,train\na,r1,b,test\n"  # same split (line 8), cross split (9)
    src = toy_input(tmp_path / "in", **{"triples.csv": triples})
    with caplog.at_level(logging.WARNING, logger="vlkge.pipeline"):
        graph = build(tmp_path, src)
    text = caplog.text
    assert "dropped 1 duplicate triple(s)" in text and "triples.csv:8 repeats" in text
    assert "triples.csv:3" in text
    assert "1 triple(s) occur in more than one split" in text and "triples.csv:9 [test]" in text
    assert {s: len(a) for s, a in graph.triples.items()} == {"train": 4, "valid": 1, "test": 1}
    assert ("a", "r1", "b", "train") in key_triples(graph)
    dropped = graph.meta["clean"]["dropped"]
    assert dropped["duplicate_triples"] == 1 and dropped["cross_split_duplicates"] == 1


def test_cross_split_duplicate_keeps_train_even_when_listed_later(tmp_path: Path) -> None:
    triples = "head,relation,tail,mode\na,r1,c,test\n" + TRIPLES.split("\n", 1)[1]
    triples += "a,r1,c,train\n"
    graph = build(tmp_path, toy_input(tmp_path / "in", **{"triples.csv": triples}))
    assert ("a", "r1", "c", "train") in key_triples(graph)
    assert ("a", "r1", "c", "test") not in key_triples(graph)


UNSEEN = TRIPLES + "a,r1,d,val\nd,r9,b,test\n"
UNSEEN_ENTITIES = ENTITIES + "d,Delta,\n"


def test_unseen_drop(tmp_path: Path, caplog) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": UNSEEN, "entities.csv": UNSEEN_ENTITIES})
    with caplog.at_level(logging.WARNING, logger="vlkge.pipeline"):
        graph = build(tmp_path, src, unseen="drop")
    assert "1 valid and 1 test triple(s)" in caplog.text and "triples.csv:8" in caplog.text
    assert "d" not in graph.entity_keys and "r9" not in graph.relation_keys
    assert graph.meta["clean"]["dropped"]["unseen_triples"] == {"valid": 1, "test": 1}
    assert graph.meta["protocol"]["inductive"] is False


def test_unseen_fail(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": UNSEEN, "entities.csv": UNSEEN_ENTITIES})
    with pytest.raises(InputError, match="entity 'd' never occurs in train") as err:
        build(tmp_path, src, unseen="fail")
    assert "triples.csv:8" in str(err.value)


def test_unseen_keep_is_inductive(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": UNSEEN, "entities.csv": UNSEEN_ENTITIES})
    graph = build(tmp_path, src, unseen="keep")
    assert ("a", "r1", "d", "valid") in key_triples(graph)
    assert graph.meta["protocol"]["inductive"] is True
    assert graph.protocol["inductive"] is True


# valid/test triples with entities absent from train: e has text, f an image only, g neither;
# r9 is a relation absent from train
INDUCTIVE = TRIPLES + "a,r1,e,val\nf,r2,b,test\ng,r1,a,test\ne,r2,f,test\nb,r9,c,val\n"
INDUCTIVE_ENTITIES = ENTITIES + "e,Epsilon,\nf,,images/f.jpg\ng,,\n"


def inductive_input(root: Path) -> Path:
    return toy_input(
        root, **{"triples.csv": INDUCTIVE, "entities.csv": INDUCTIVE_ENTITIES, "images/f.jpg": b"\xff\xd8f"}
    )


def test_user_graphs_are_inductive_where_they_can_be(tmp_path: Path, caplog) -> None:
    """The default for custom graphs (clean.unseen unset): unseen entities with text or an image
    stay in valid/test; those with neither, and unseen relations, are dropped with a count."""
    src = inductive_input(tmp_path / "in")
    with caplog.at_level(logging.INFO, logger="vlkge.pipeline"):
        graph = build(tmp_path, src)
    kept = key_triples(graph)
    assert {("a", "r1", "e", "valid"), ("f", "r2", "b", "test"), ("e", "r2", "f", "test")} <= kept
    assert not {t for t in kept if "g" in (t[0], t[2]) or t[1] == "r9"}
    assert "g" not in graph.entity_keys and "r9" not in graph.relation_keys
    clean = graph.meta["clean"]
    assert clean["unseen"] == "inductive"
    assert clean["inductive"] == {
        "kept": {"valid": 1, "test": 2},
        "dropped_entity_without_text_or_image": {"valid": 0, "test": 1},
        "dropped_relation_unseen_in_train": {"valid": 1, "test": 0},
    }
    assert clean["dropped"]["unseen_triples"] == {"valid": 1, "test": 1}
    assert graph.meta["protocol"]["inductive"] is True
    summary = caplog.text
    assert "kept 1 valid and 2 test triple(s) whose entity unseen in train has text or an image" in summary
    assert "dropped 1 whose unseen entity has neither and 1 with a relation never seen in train" in summary


def test_inductive_mode_drops_an_entity_whose_image_is_missing(tmp_path: Path) -> None:
    src = inductive_input(tmp_path / "in")
    (src / "images" / "f.jpg").unlink()  # f keeps no modality at all
    graph = build(tmp_path, src)
    assert "f" not in graph.entity_keys
    assert graph.meta["clean"]["inductive"]["dropped_entity_without_text_or_image"] == {"valid": 0, "test": 3}


def test_inductive_with_nothing_unseen_is_transductive(tmp_path: Path) -> None:
    graph = build(tmp_path, toy_input(tmp_path / "in"))
    assert graph.meta["clean"]["unseen"] == "inductive"
    assert graph.meta["protocol"]["inductive"] is False and "inductive" not in graph.meta["clean"]


def test_drop_still_chosen_explicitly_for_user_graphs(tmp_path: Path) -> None:
    graph = build(tmp_path, inductive_input(tmp_path / "in"), unseen="drop")
    assert not {t for t in key_triples(graph) if t[3] != "train" and {"e", "f", "g"} & {t[0], t[2]}}
    assert graph.meta["clean"]["dropped"]["unseen_triples"] == {"valid": 2, "test": 3}


def test_bad_unseen_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"clean\.unseen"):
        build(tmp_path, toy_input(tmp_path / "in"), unseen="sometimes")


def test_non_utf8_text(tmp_path: Path) -> None:
    entities = ENTITIES.encode().replace(b"Beta", b"B\xe9ta")  # Latin-1 é on line 3
    src = toy_input(tmp_path / "in", **{"entities.csv": entities})
    with pytest.raises(InputError, match="not valid UTF-8") as err:
        build(tmp_path, src)
    assert "entities.csv:3" in str(err.value) and "re-save the file as UTF-8" in str(err.value)


def test_missing_image_is_dropped_entity_keeps_text(tmp_path: Path, caplog) -> None:
    src = toy_input(tmp_path / "in", **{"images/a.jpg": None})
    with caplog.at_level(logging.WARNING, logger="vlkge.pipeline"):
        graph = build(tmp_path, src)
    assert "1 referenced image(s) not found" in caplog.text
    assert "entities.csv:2" in caplog.text and "raw/images/a.jpg" in caplog.text
    a = graph.entities.filter(graph.entities["key"] == "a").row(0, named=True)
    assert a["images"] == [] and a["text"] == "Alpha"
    assert graph.meta["clean"]["dropped"]["missing_images"] == 1


def test_image_path_outside_input_dir(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"entities.csv": ENTITIES.replace("images/a.jpg", "../a.jpg")})
    with pytest.raises(InputError, match="must be relative") as err:
        build(tmp_path, src)
    assert "entities.csv:2" in str(err.value)


def test_missing_source_dir(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="source not found") as err:
        build(tmp_path, tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_source_without_triples(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in", {"entities.csv": ENTITIES})
    with pytest.raises(SourceError, match=r"no triples\.csv and no train\.txt"):
        build(tmp_path, src)


def test_clean_without_crawl(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="vlkge crawl"):
        adapter_for(DATASET).clean(DATASET, tmp_path / "raw", tmp_path / "graph", params())


def test_failed_clean_leaves_no_graph(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in", **{"triples.csv": TRIPLES.replace(",train", ",val")})
    with pytest.raises(InputError):
        build(tmp_path, src)
    ds = tmp_path / "data" / "custom-toy"
    assert sorted(p.name for p in ds.iterdir()) == ["raw"]


def test_failed_clean_keeps_previous_graph(tmp_path: Path) -> None:
    src = toy_input(tmp_path / "in")
    good = build(tmp_path, src)
    graph_dir = tmp_path / "data" / "custom-toy" / "graph"
    before = {p.name: p.read_bytes() for p in graph_dir.iterdir()}
    (src / "triples.csv").write_text(TRIPLES + "a,r1\n")
    with pytest.raises(InputError, match=r"triples\.csv:8"):
        build(tmp_path, src)
    assert {p.name: p.read_bytes() for p in graph_dir.iterdir()} == before
    assert read_graph(graph_dir).entity_keys == good.entity_keys
    assert sorted(p.name for p in graph_dir.parent.iterdir()) == ["graph", "raw"]

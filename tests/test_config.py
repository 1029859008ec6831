"""Parameters: packaged defaults, params.yaml, flags; refusals name the key."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from vlkge.config import load_config, load_params
from vlkge.errors import ConfigError


def test_params_file_and_overrides_layer(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  dim: 64\ntrain:\n  lr: 1\n")
    params = load_params(path, {"model": {"backbone": "rotate", "dim": None}})
    assert params["model"] == {**params["model"], "dim": 64, "backbone": "rotate"}
    assert params["train"]["lr"] == 1.0 and isinstance(params["train"]["lr"], float)
    assert params["train"]["batch_size"] == 512  # untouched default


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("model:\n  dimension: 64\n", "model.dimension"),
        ("model:\n  dim: sixty\n", "model.dim"),
        ("model:\n  dim: 0\n", "model.dim"),
        ("train:\n  optimizer: sgd\n", "train.optimizer"),
        ("train: 3\n", "train"),
        ("train:\n  filtered: 1\n", "train.filtered"),
    ],
)
def test_bad_params_name_the_key(tmp_path, text, key):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert info.value.key == key
    assert key in str(info.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  dim: 3\n  backbone: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert info.value.line is not None and str(path) in str(info.value)


def test_sections_are_typed_and_mirror_defaults_yaml():
    from dataclasses import fields

    from vlkge.config import Config, default_params

    defaults = default_params()
    config = load_config(None, {"model": {"modalities": ["textual", "structural"], "dim": 8}})
    assert [f.name for f in fields(Config)] == list(defaults)
    for section in ("crawl", "clean", "model", "train", "evaluate", "encode"):
        assert [f.name for f in fields(getattr(config, section))] == list(defaults[section])
    assert config.model.dim == 8 and config.model.modalities == ("structural", "textual")
    assert config.model.multimodal and config.train.lr == defaults["train"]["lr"]
    assert Config.from_params(config.to_params()) == config  # the plain dict adapters get, and back
    with pytest.raises(FrozenInstanceError):
        config.train.lr = 1.0


def test_updated_checks_like_loading():
    config = load_config(None)
    assert config.updated({"train": {"lr": 0.5, "epochs": None}}).train.lr == 0.5
    with pytest.raises(ConfigError) as info:
        config.updated({"model": {"fusion": "median"}})
    assert info.value.key == "model.fusion" and "average" in str(info.value)


def test_a_components_own_options_pass_through_and_unknown_ones_are_named():
    from vlkge.fusion import make_fusion

    config = load_config(None, {"model": {"fusion_options": {"depth": 3}}})
    assert dict(config.model.fusion_options) == {"depth": 3}  # the parser does not know them
    with pytest.raises(ConfigError) as info:
        make_fusion("average", 2, 4, config.model.fusion_options)
    assert info.value.key == "model.fusion_options.depth" and "its options: none" in str(info.value)

"""Parameters: packaged defaults, params.yaml, flags; refusals name the key."""

from __future__ import annotations

import pytest

from vlkge.config import load_params
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

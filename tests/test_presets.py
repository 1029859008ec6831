"""The paper presets: named recipes above params.yaml and below the flags, each setting what the
VL-KGE reference code sets (issue 11's table), with every difference from our defaults commented."""

from __future__ import annotations

import re

import pytest
import yaml

from vlkge.config import PRESET_DIR, default_params, load_config, preset_names
from vlkge.errors import ConfigError

BACKBONES = ("transe", "distmult", "complex", "rotate")
#: shared by the four recipes: dim 768, batch 512, Adagrad 0.1, 100 negatives, 200 epochs,
#: validation every epoch, Xavier uniform, selection under the reference code's filter key
SHARED = {
    ("model", "dim"): 768,
    ("model", "init"): "xavier_uniform",
    ("train", "batch_size"): 512,
    ("train", "optimizer"): "adagrad",
    ("train", "lr"): 0.1,
    ("train", "negatives"): 100,
    ("train", "epochs"): 200,
    ("train", "eval_every"): 1,
    ("train", "valid_protocol"): "paper",
}


def test_the_four_presets_are_shipped():
    assert {f"paper-{b}" for b in BACKBONES} <= set(preset_names())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_preset_paper_resolves_per_backbone(backbone):
    config = load_config(None, {"preset": "paper", "model": {"backbone": backbone}})
    assert config.preset == "paper" and config.model.backbone == backbone
    params = config.to_params()
    for (section, key), value in SHARED.items():
        assert params[section][key] == value, f"{section}.{key}"
    # the recipes' own settings (issue 11's table)
    expected_patience = {"transe": 50, "distmult": 50, "complex": 50, "rotate": 0}[backbone]
    assert config.train.patience == expected_patience
    if backbone in ("transe", "rotate"):
        assert config.model.margin == 12.0
    if backbone == "transe":
        assert config.model.p_norm == 1
        assert dict(config.model.backbone_options) == {
            "normalize_entities": True,
            "normalize_relations": True,
        }


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_difference_from_our_defaults_is_commented(backbone):
    """Each key a preset sets that differs from vlkge/defaults.yaml has a comment saying ours."""
    path = PRESET_DIR / f"paper-{backbone}.yaml"
    text = path.read_text(encoding="utf-8")
    recipe, defaults = yaml.safe_load(text), default_params()
    for section, values in recipe.items():
        for key, value in values.items():
            if key == "backbone_options" or value == defaults[section][key] or key == "backbone":
                continue
            # the key's line or the comment block just above it says what ours is
            block = re.search(rf"((?:\n\s*#[^\n]*)*)\n\s*{key}:[^\n]*", text)
            assert block is not None and "ours" in block.group(0).lower(), f"{section}.{key} in {path.name}"


def test_a_preset_sits_above_the_params_file_and_below_the_flags(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  patience: 5\n  eval_every: 2\n  epochs: 30\nmodel:\n  backbone: complex\n")
    config = load_config(params, {"preset": "paper"})
    assert config.model.backbone == "complex"  # params.yaml's backbone picks paper-complex
    assert (config.train.patience, config.train.eval_every, config.train.epochs) == (50, 1, 200)
    config = load_config(params, {"preset": "paper", "train": {"epochs": 3}})
    assert config.train.epochs == 3  # a flag wins over the preset
    # params.yaml may name the preset itself (dvc exp run -S preset=paper)
    params.write_text("preset: paper\nmodel:\n  backbone: rotate\n")
    assert load_config(params).train.patience == 0


def test_updating_a_config_does_not_apply_its_preset_again():
    config = load_config(None, {"preset": "paper", "model": {"backbone": "distmult"}, "train": {"epochs": 2}})
    assert config.updated({"seed": 7}).train.epochs == 2


def test_an_unknown_preset_lists_the_shipped_ones(tmp_path):
    with pytest.raises(ConfigError, match="paper-transe") as info:
        load_config(None, {"preset": "papr"})
    assert info.value.key == "preset"
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("train:\n  lr: 0.5\n")
    assert load_config(None, {"preset": str(recipe)}).train.lr == 0.5
    recipe.write_text("preset: paper\n")
    with pytest.raises(ConfigError, match="another preset"):
        load_config(None, {"preset": str(recipe)})

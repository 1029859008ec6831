"""Attention fusion, a fusion mode with options of its own (``hidden``, ``temperature``) that
reach it from the parameters: per-entity weights over the present modalities only."""

from __future__ import annotations

import pytest
import torch

from tests.test_fusion import _parts
from tests.vl_data import IMAGES, encode_tiny, vl_params, write_tiny_vl_graph
from vlkge.config import load_config
from vlkge.errors import ConfigError
from vlkge.features.inputs import EntityInputs
from vlkge.fusion import make_fusion
from vlkge.model import build_model
from vlkge.training import Trainer


def test_weights_are_per_entity_and_over_present_modalities_only():
    parts, mask = _parts()
    fusion = make_fusion("attention", 3, 5, {"hidden": 4})
    weights = fusion.weights(parts.unbind(1), mask)
    assert torch.allclose(weights[:3].sum(1), torch.ones(3)) and torch.equal(weights[3], torch.zeros(3))
    assert weights[1, 1] == 0 and torch.allclose(weights[2], torch.tensor([0.0, 1.0, 0.0]))
    out = fusion(parts.unbind(1), mask)
    assert torch.allclose(out[1], weights[1, 0] * parts[1, 0] + weights[1, 2] * parts[1, 2], atol=1e-6)
    assert torch.equal(out[3], torch.zeros(5))  # no modality: the zero vector, as every fusion
    changed = parts.clone()
    changed[1, 1] += 100.0  # absent for entity 1: changes nothing
    assert torch.allclose(fusion(changed.unbind(1), mask)[1], out[1])
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fusion.parameters())


def test_a_high_temperature_approaches_the_average():
    parts, mask = _parts()
    hot = make_fusion("attention", 3, 5, {"temperature": 1e6})
    average = make_fusion("average", 3, 5)
    assert torch.allclose(hot(parts.unbind(1), mask), average(parts.unbind(1), mask), atol=1e-4)


def test_options_reach_it_from_the_parameters_and_bad_ones_are_named():
    n = 6
    inputs = EntityInputs(num_entities=n, has_structure=torch.ones(n, dtype=torch.bool))
    inputs.features["textual"], inputs.present["textual"] = torch.randn(n, 3), torch.ones(n, dtype=torch.bool)
    options = {"hidden": 7, "temperature": 0.5}
    model_spec = {
        "modalities": ["structural", "textual"],
        "dim": 4,
        "fusion": "attention",
        "fusion_options": options,
    }
    model = build_model(load_config(overrides={"model": model_spec}), n, 2, inputs)
    fusion = model.entity.fusion
    assert fusion.temperature == 0.5 and fusion.score[0].out_features == 7
    for bad, key in (
        ({"hidden": 0}, "hidden"),
        ({"temperature": -1}, "temperature"),
        ({"heads": 2}, "heads"),
    ):
        with pytest.raises(ConfigError) as info:
            make_fusion("attention", 2, 4, bad)
        assert info.value.key == f"model.fusion_options.{key}"


@pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")
def test_a_vl_model_trains_with_it(tmp_path):
    graph = write_tiny_vl_graph(tmp_path / "tiny-vl")
    encode_tiny(graph)
    params = vl_params(fusion="attention", fusion_options={"hidden": 8, "temperature": 2.0})
    trainer = Trainer(graph, params, tmp_path / "run")
    before = [p.detach().clone() for p in trainer.model.entity.fusion.parameters()]
    trainer.fit(show=False, log=None)
    after = list(trainer.model.entity.fusion.parameters())
    assert trainer.state.epoch == 3 and any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))

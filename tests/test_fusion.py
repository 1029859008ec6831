"""Fusion over the modality mask: average, weighted (normalised over present), concat."""

from __future__ import annotations

import pytest
import torch

from vlkge.errors import ConfigError
from vlkge.fusion import make_fusion


def _parts():
    torch.manual_seed(0)
    parts = torch.randn(4, 3, 5)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    return parts, mask


def test_average_is_the_mean_of_present_modalities():
    parts, mask = _parts()
    out = make_fusion("average", 3, 5)(parts.unbind(1), mask)
    assert torch.allclose(out[0], parts[0].mean(0))
    assert torch.allclose(out[1], (parts[1, 0] + parts[1, 2]) / 2)
    assert torch.allclose(out[2], parts[2, 1])
    assert torch.equal(out[3], torch.zeros(5))  # nothing present: zero (and excluded by callers)


def test_weighted_renormalises_over_present_modalities():
    parts, mask = _parts()
    fusion = make_fusion("weighted", 3, 5)
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    weights = fusion.weights(mask)
    assert torch.allclose(weights[:3].sum(1), torch.ones(3))
    assert torch.equal(weights[3], torch.zeros(3))
    assert weights[1, 1] == 0 and torch.allclose(weights[2], torch.tensor([0.0, 1.0, 0.0]))
    w = torch.softmax(torch.tensor([0.0, 2.0]), 0)
    expected = w[0] * parts[1, 0] + w[1] * parts[1, 2]
    assert torch.allclose(fusion(parts.unbind(1), mask)[1], expected, atol=1e-6)
    fusion(parts.unbind(1), mask).sum().backward()
    assert fusion.logits.grad.abs().sum() > 0


def test_concat_ignores_absent_modalities():
    parts, mask = _parts()
    fusion = make_fusion("concat", 3, 5)
    changed = parts.clone()
    changed[1, 1] += 100.0  # absent for row 1
    assert torch.allclose(fusion(parts.unbind(1), mask), fusion(changed.unbind(1), mask))
    assert fusion(parts.unbind(1), mask).shape == (4, 5)


def test_unknown_fusion_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.fusion"):
        make_fusion("median", 2, 4)

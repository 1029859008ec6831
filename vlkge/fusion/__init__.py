"""Fusion of per-modality entity representations over a modality mask (GUIDE §3.2).

Every fusion is an ``nn.Module`` built as ``Fusion(num_modalities, dim, **options)`` and called
as ``fusion(parts, mask)``: ``parts`` M tensors [B, d] (one per modality, kept apart: no
[B, M, d] stack; rows of absent modalities may hold anything) and ``mask`` [B, M] bool (which
modalities the entity has) → [B, d]. All are vectorised over the batch: no per-entity Python. An
entity with no modality at all gets the zero vector (callers report and exclude such entities).
One module per mode; they are listed in :data:`vlkge.components.FUSIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from vlkge.components import FUSIONS


def make_fusion(
    name: str, num_modalities: int, dim: int, options: Mapping[str, Any] | None = None
) -> nn.Module:
    """The fusion registered as ``name`` (``model.fusion``) with its own ``options``
    (``model.fusion_options``)."""
    return FUSIONS.build(name, options, num_modalities=num_modalities, dim=dim)


__all__ = ["make_fusion"]

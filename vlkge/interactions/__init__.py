"""KGE interaction functions (backbones), one module each; :func:`make_interaction` builds one by
name from :data:`vlkge.components.BACKBONES`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlkge.components import BACKBONES
from vlkge.interactions.base import Interaction


def make_interaction(
    name: str, *, dim: int, p_norm: int = 2, margin: float = 0.0, options: Mapping[str, Any] | None = None
) -> Interaction:
    """The backbone registered as ``name`` (``model.backbone``) for entities of size ``dim``, with
    its own ``options`` (``model.backbone_options``)."""
    return BACKBONES.build(name, options, dim=dim, p_norm=p_norm, margin=margin)


__all__ = ["Interaction", "make_interaction"]

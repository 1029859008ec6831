"""Entity (and relation) representations behind one interface
(:class:`~vlkge.representations.base.EntityRepresentation`): a structural table, or structure and
frozen features fused over a modality mask."""

from __future__ import annotations

from vlkge.representations.base import BatchRows, EntityRepresentation
from vlkge.representations.multimodal import MultimodalRepresentation, renumber_entities
from vlkge.representations.structural import StructuralEmbedding

__all__ = [
    "BatchRows",
    "EntityRepresentation",
    "MultimodalRepresentation",
    "StructuralEmbedding",
    "renumber_entities",
]

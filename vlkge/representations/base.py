"""The entity-representation interface: what the model, the trainer, evaluation and prediction ask
of entity representations, answered alike by a structural table and by fused multimodal ones.

- ``forward(ids [*])`` → ``[*, w]``; ``all()`` → ``[N, w]``;
- ``rows(ids [U], fresh, drop_structure)`` → ``[U, w]``: a training batch's distinct entities;
- ``for_batch(batch, replacement, …)`` → what a training step scores against: ``(None, batch,
  replacement)`` for a table scored in place, or the batch's rows ``[U, w]`` with the batch
  renumbered into them;
- ``present`` ``[N]`` bool: entities that have a representation (the others are never candidates,
  and evaluation scores the queries touching them as misses at the worst rank);
- ``shared_parameters()``: layers every entity goes through (trained at ``train.projection_lr``);
- ``feature_modalities`` and ``feature_table(m)``: the frozen feature matrices (none for a table);
- ``similarity(a, b)`` / ``similarity_to_all(q)``: how alike two entities' features are (None for
  a table), the evidence the model's similarity prior weighs;
- ``new_entity(features)``: an entity not in the graph, from its features (prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

from vlkge.errors import InputError
from vlkge.gathered import rows_at

#: features that replace cached rows: {modality: (entity ids [k], features [k, d_m])}
FreshRows = dict[str, tuple[Tensor, Tensor]]
#: fine-tuning's re-encoding of a batch: its positives' entity ids → their fresh rows
Fresh = Callable[[Tensor], FreshRows]
#: structure dropout of a batch: number of distinct entities U → [U] bool (drop their structure)
Drop = Callable[[int], Tensor]


@dataclass
class BatchRows:
    """What a training step scores against: ``table`` [U, w] the rows of the distinct entities the
    batch touches (None: the representations are read in place), ``batch`` [B, 3] and
    ``replacement`` [B, K] with their entities as positions in it, and ``ids`` [U] the global ids
    of those positions (None when nothing was renumbered)."""

    table: Tensor | None
    batch: Tensor
    replacement: Tensor
    ids: Tensor | None = None
    #: [U] bool: which of those entities have their structure in this step (after dropout)
    structured: Tensor | None = None
    #: the replacement rows scored without computing them (:mod:`vlkge.representations.linear_negatives`):
    #: (queries [B, S, w], replacement [B, K] positions, side [B, K]) → [B, K]. With it, ``table``
    #: holds only the first positions, the entities of ``batch``'s own heads and tails.
    negatives: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None

    def global_ids(self, local: Tensor) -> Tensor:
        """Positions in ``table`` → entity ids of the graph."""
        return local if self.ids is None else rows_at(self.ids, local)

    @cached_property
    def replaced_ids(self) -> Tensor:
        """[B, K]: the entity ids of ``replacement`` (gathered once for whoever reads them)."""
        return self.global_ids(self.replacement)


class EntityRepresentation(nn.Module):
    """Base class of entity representations (see the module docstring)."""

    num_entities: int
    #: gather rows with sparse gradients (honoured by tables scored in place; set by the trainer
    #: for row-wise optimisers on large graphs)
    sparse: bool = False
    feature_modalities: tuple[str, ...] = ()

    def all(self) -> Tensor:
        """[N, w] for every entity."""
        raise NotImplementedError

    def rows(
        self, ids: Tensor, fresh: FreshRows | None = None, drop_structure: Tensor | None = None
    ) -> Tensor:
        """ids [U] (sorted, unique) → [U, w] (a table ignores ``fresh`` and ``drop_structure``)."""
        return self(ids)

    def for_batch(
        self,
        batch: Tensor,
        replacement: Tensor,
        *,
        fresh: Fresh | None = None,
        drop: Drop | None = None,
        linear: bool = False,
    ) -> BatchRows:
        """batch [B, 3], replacement [B, K] → :class:`BatchRows`: by default the representations
        are scored in place (no table, ids unchanged). ``linear``: the caller scores candidates
        linearly in their rows (a dot product), so replacements may come as ``negatives``."""
        return BatchRows(None, batch, replacement)

    @property
    def present(self) -> Tensor:
        """[N] bool: entities with a representation (by default all)."""
        return torch.ones(self.num_entities, dtype=torch.bool)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every entity's representation goes through (none for a table)."""
        return []

    def feature_table(self, modality: str) -> Tensor:
        """The frozen features [N, d_m] of a feature modality."""
        raise KeyError(modality)

    def similarity(self, a: Tensor, b: Tensor) -> Tensor | None:
        """Entity ids a, b [*] (one shape) → feature similarity [*], or None without features."""
        return None

    def structured(self) -> Tensor:
        """[N] bool: entities with a structural part (all, for a table)."""
        return torch.ones(self.num_entities, dtype=torch.bool)

    def unit_tables(self) -> tuple[Tensor, ...]:
        """Each feature modality's L2-normalised features [N, d_m] (zero rows where an entity
        lacks it), in ``feature_modalities`` order: D = Σ d_m."""
        raise NotImplementedError("no features")

    def unit_dot_sampled(self, modality: str, queries: Tensor, index: Tensor, side: Tensor) -> Tensor:
        """⟨queries[b, side[b, k]], x̂_m[index[b, k]]⟩ [B, K] of the unit table of ``modality``."""
        raise NotImplementedError("no features")

    def unit_products(self, queries: Tensor) -> Tensor:
        """queries [Q, D] (a block [Q, d_m] per feature modality, side by side) → [N, Q]: every
        entity e's Σ_m ⟨q_m, x̂_m(e)⟩; differentiable in ``queries``."""
        raise NotImplementedError("no features")

    def unit_rows(self, ids: Tensor) -> tuple[Tensor, ...]:
        """Entity ids [*] → :meth:`unit_tables`' rows of those entities, [*, d_m] each."""
        return tuple(rows_at(unit, ids) for unit in self.unit_tables())

    def similarity_in_batch(
        self, rows: BatchRows, corrupt_head: Tensor, ends: tuple[tuple[Tensor, ...], tuple[Tensor, ...]]
    ) -> tuple[Tensor, Tensor]:
        """A training batch's feature similarities: (positives [B], corruptions [B, K]), given
        the :meth:`unit_rows` of its heads and tails, ``ends``."""
        raise NotImplementedError("no features: no similarity")

    def similarity_to_all(self, query: Tensor, among: Tensor | None = None) -> Tensor | None:
        """Entity ids [B] → feature similarity [B, N] with every entity (with the entity ids
        ``among`` [P]: [B, P]), or None without features."""
        return None

    def similarity_to_features(self, features: Mapping[str, Tensor]) -> Tensor:
        """A new entity's features {m: [B, d_m]} → feature similarity [B, N] with every entity."""
        raise NotImplementedError("no features: no similarity")

    def unit_of_features(self, features: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
        """A new entity's features {m: [B, d_m]} → its normalised rows, as :meth:`unit_rows`."""
        raise NotImplementedError("no features")

    def new_entity(self, features: dict[str, Tensor]) -> Tensor:
        """A new entity (not in the graph) from its features {m: [B, d_m]} → [B, w]."""
        raise InputError("a structure-only run cannot represent a new entity", hint="train with features")

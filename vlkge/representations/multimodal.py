"""Multimodal entity representations (GUIDE §3.1): structure + frozen features, fused.

Per entity there is a structural row (trainable; only for entities that occur in the train split)
and, per feature modality (``visual`` = the store's ``image``, ``textual`` = its ``text``), a frozen
feature vector with a learned linear projection to the real width ``d``. A mask [N, M] says which
of the ``model.modalities`` each entity has; :mod:`vlkge.fusion` combines the present ones.

Widths: TransE/DistMult entities are ``[d]``; ComplEx/RotatE entities are ``[real | imaginary]``
(``2d``). With ``model.imaginary: fused`` (the default) the features are projected to whole complex
rows and fused with the structural row at full width: they inform both parts of every entity.
Otherwise the fused vector is the real part; the imaginary part is the structural table's own for
entities with structure, and for entities without it (inductive, or runs without ``structural``)
it is derived from the fused real part, ``P·real`` (``projection``) or ``σ(G·real) ⊙ P·real``
(``gated``), so P and G get gradients from those entities.

Entities with no modality and no structure have no representation (``present`` is False): the
trainer reports them, and evaluation excludes them (as queries and as candidates).

``model.without_structure`` says what the backbone sees of an entity that has no structure (unseen
in train, or structure-dropped in a training batch): ``features`` its fused features, as above, or
``neutral`` the zero vector — it then takes part only through the feature similarity that the
model's similarity prior weighs (:meth:`similarity`), and its backbone score is the same as any
unknown entity's.

Feature similarity of two entities: the mean, over the feature modalities both have, of the cosine
of their frozen feature vectors; 0 when they share none, and 0 for an entity with itself (an entity
is not its own neighbour: similarity is evidence about *other* entities). It reads the normalised
feature tables (:meth:`MultimodalRepresentation.unit_table`), computed once and kept until the
features change — the stored tables themselves when their rows are already unit vectors (the
default ``encode.normalize``), so they cost no memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkge.errors import InputError
from vlkge.features.inputs import EntityInputs
from vlkge.fusion import make_fusion
from vlkge.fusion.base import MaskWeightedFusion
from vlkge.gathered import dot_of_chosen_pairs, rows_at, sampled_dot
from vlkge.modalities import FEATURE_MODALITIES, STRUCTURAL
from vlkge.representations.base import BatchRows, Drop, EntityRepresentation, Fresh, FreshRows
from vlkge.representations.linear_negatives import LinearNegatives
from vlkge.representations.structural import StructuralEmbedding

#: a stored feature row whose norm is within this of 1 is taken as a unit vector as it is
UNIT_TOLERANCE = 1e-5
#: a modality fewer than this share of the entities have is scarce (:meth:`unit_dot_sampled`)
SCARCE_SHARE = 0.25


def renumber_entities(
    batch: Tensor, replacement: Tensor, ends_first: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """The distinct entities of batch [B, 3] and replacement [B, K] → (ids [U] sorted, batch and
    replacement with their entities renumbered as positions in ``ids``). ``ends_first``: the
    entities of the batch's heads and tails take the first positions (ids sorted within each of
    the two groups)."""
    b = len(batch)
    ids, local = torch.unique(
        torch.cat([batch[:, 0], batch[:, 2], replacement.reshape(-1)]), return_inverse=True
    )
    if ends_first:
        later = torch.ones(len(ids), dtype=torch.bool, device=ids.device)
        later[local[: 2 * b]] = False
        order = torch.argsort(later.to(torch.uint8), stable=True)  # ends first, each group sorted
        position = torch.empty_like(order)
        position[order] = torch.arange(len(ids), device=ids.device)
        ids, local = ids[order], position[local]
    batch = torch.stack([local[:b], batch[:, 1], local[b : 2 * b]], dim=1)
    return ids, batch, local[2 * b :].view_as(replacement)


class MultimodalRepresentation(EntityRepresentation):
    """Fused entity representations: ``forward(ids [*])`` → [*, w]; ``all()`` → [N, w].

    ``w = factor·d`` with ``factor`` 1 (real backbones) or 2 (complex: ``[real | imaginary]``).
    """

    def __init__(
        self,
        inputs: EntityInputs,
        modalities: tuple[str, ...],
        dim: int,
        factor: int,
        *,
        fusion: str = "average",
        fusion_options: Mapping[str, Any] | None = None,
        imaginary: str = "fused",
        init: str = "xavier_uniform",
        without_structure: str = "features",
    ) -> None:
        super().__init__()
        # neutral needs a structural part to be neutral against: without one, every entity is its
        # features
        self.neutral = without_structure == "neutral" and STRUCTURAL in modalities
        self.modalities = tuple(modalities)
        self.feature_modalities = tuple(m for m in modalities if m in FEATURE_MODALITIES)
        self.dim, self.factor = dim, factor
        # the width of each fused part: the real part d, or the whole complex row (``fused``)
        self.part_width = factor * dim if imaginary == "fused" else dim
        self.num_entities = inputs.num_entities
        n = inputs.num_entities
        has_structure = (
            inputs.has_structure if inputs.has_structure is not None else torch.zeros(n, dtype=torch.bool)
        )
        self.register_buffer("has_structure", has_structure.clone(), persistent=False)
        self.structure = StructuralEmbedding(n, factor * dim, init) if STRUCTURAL in modalities else None
        self.projections = nn.ModuleDict()
        # modalities every entity has: projected without skipping absent rows
        self.complete = {m: bool(inputs.present[m].all()) for m in self.feature_modalities}
        # modalities most entities lack: sampled dot products computed for the pairs that have it
        self.scarce = {
            m: float(inputs.present[m].float().mean()) < SCARCE_SHARE for m in self.feature_modalities
        }
        for m in self.feature_modalities:
            feats = inputs.features[m]
            self.register_buffer(f"features_{m}", feats, persistent=False)
            self.projections[m] = nn.Linear(feats.shape[1], self.part_width)
        columns = [has_structure if m == STRUCTURAL else inputs.present[m] for m in modalities]
        self.register_buffer("mask", torch.stack(columns, dim=1), persistent=False)  # [N, M]
        # modality → ((data pointer, version) of the features it was computed from, unit table)
        self._units: dict[str, tuple[tuple[int, int], Tensor]] = {}
        self.fusion = make_fusion(fusion, len(modalities), self.part_width, fusion_options)
        self.imaginary = imaginary
        if factor == 2 and imaginary != "fused":
            self.to_imaginary = nn.Linear(dim, dim)
            self.gate = nn.Linear(dim, dim) if imaginary == "gated" else None

    # -- what each entity has ---------------------------------------------------------------
    @property
    def present(self) -> Tensor:
        """[N] bool: entities with at least one modality (the others have no representation)."""
        return self.mask.any(dim=1)

    def feature_table(self, modality: str) -> Tensor:
        """The frozen (or, fine-tuning, cached tuned) features [N, d_m] of ``modality``."""
        if modality not in self.feature_modalities:
            raise KeyError(modality)
        return getattr(self, f"features_{modality}")

    def unit_table(self, modality: str) -> Tensor:
        """[N, d_m]: the L2-normalised features of ``modality``, zero rows for entities without it.
        Kept until the feature table changes (fine-tuning writes into it: its version moves). Rows
        already of unit norm (within :data:`UNIT_TOLERANCE`; zero where absent) are kept as stored,
        and the table itself is returned when all are (no copy)."""
        table = self.feature_table(modality)
        key = (table.data_ptr(), table._version)
        cached = self._units.get(modality)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            have = self.mask[:, self.modalities.index(modality)]
            norms = torch.linalg.vector_norm(table, dim=1)
            off = (norms - have.to(norms.dtype)).abs() > UNIT_TOLERANCE  # [N]: rows to normalise
            unit = table
            if bool(off.any()):
                normalised = F.normalize(table, dim=-1) * have.unsqueeze(-1).to(table.dtype)
                unit = torch.where(off.unsqueeze(-1), normalised, table)
        self._units[modality] = (key, unit)
        return unit

    def unit_dot_sampled(
        self, modality: str, queries: Tensor, index: Tensor, side: Tensor, pairs: Tensor | None = None
    ) -> Tensor:
        """out[b, k] = ⟨queries[b, side[b, k]], x̂[index[b, k]]⟩ for the unit table x̂ of ``modality``
        (:meth:`dot_sampled`)."""
        return self.dot_sampled(modality, self.unit_table(modality), queries, index, side, pairs)

    def dot_sampled(
        self,
        modality: str,
        table: Tensor,
        queries: Tensor,
        index: Tensor,
        side: Tensor,
        pairs: Tensor | None = None,
    ) -> Tensor:
        """out[b, k] = ⟨queries[b, side[b, k]], table[index[b, k]]⟩ for a table [N, d_m] of
        ``modality`` (:func:`vlkge.gathered.sampled_dot`: queries [B, S, d_m], index [B, K] entity
        ids, side [B, K] → [B, K]; differentiable in ``queries``). Pairs whose entity lacks the
        modality are 0; for a scarce modality (most entities lack it: images of a few entities)
        only the others are computed, from their gathered rows — only those of ``pairs`` [B, K]
        bool, when given: the caller knows the others are 0 (a query row that is 0)."""
        if not self.scarce[modality]:
            return sampled_dot(queries, table, index, side)
        have = rows_at(self.mask[:, self.modalities.index(modality)], index)  # [B, K]
        return dot_of_chosen_pairs(queries, table, index, side, have if pairs is None else have & pairs)

    def unit_tables(self) -> tuple[Tensor, ...]:
        """:meth:`unit_table` of each feature modality, in ``feature_modalities`` order."""
        return tuple(self.unit_table(m) for m in self.feature_modalities)

    def unit_products(self, queries: Tensor) -> Tensor:
        """queries [Q, D] → [N, Q]: Σ_m ⟨q_m, x̂_m(e)⟩ (one product per modality, entities as its
        rows: 2–3× faster than queries as rows when Q is small; a scarce modality multiplies only
        the rows of the entities that have it)."""
        units = self.unit_tables()
        blocks = torch.split(queries, [unit.shape[1] for unit in units], dim=1)
        parts = list(zip(self.feature_modalities, blocks, units, strict=True))
        out = None  # the full products first: a product into a zero matrix (addmm) costs 2× one
        for m, block, unit in parts:
            if not self.scarce[m]:
                out = unit @ block.T if out is None else out + unit @ block.T
        if out is None:
            out = queries.new_zeros(self.num_entities, queries.shape[0])
        for m, block, unit in parts:
            if self.scarce[m]:
                holders = self.mask[:, self.modalities.index(m)].nonzero().squeeze(1)
                out = out.index_add(0, holders, unit.index_select(0, holders) @ block.T)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        """Projections, fusion and imaginary part: every parameter but the structural table's."""
        own = set() if self.structure is None else {id(p) for p in self.structure.parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    # -- composition --------------------------------------------------------------------------
    def compose(
        self, structure: Tensor | None, projected: dict[str, Tensor], mask: Tensor, has_structure: Tensor
    ) -> Tensor:
        """structure [B, factor·d] or None, projected features {m: [B, d]}, mask [B, M],
        has_structure [B] → [B, factor·d]."""
        whole = self.part_width > self.dim  # fused: the parts are whole complex rows
        structural = structure if whole or structure is None else structure[:, : self.dim]
        real = self.fusion([structural if m == STRUCTURAL else projected[m] for m in self.modalities], mask)
        if self.factor == 2 and not whole:
            if structure is None:
                imag = self._derived_imaginary(real)
            else:  # derived only where there is no structural imaginary part (possibly no row:
                # the layers then get zero gradients, as every parameter must under DDP)
                missing = (~has_structure).nonzero().squeeze(1)
                imag = structure[:, self.dim :].index_copy(0, missing, self._derived_imaginary(real[missing]))
            real = torch.cat([real, imag], dim=-1)
        if self.neutral:  # entities without structure: the zero vector
            real = real * has_structure.unsqueeze(-1).to(real.dtype)
        return real

    def _derived_imaginary(self, real: Tensor) -> Tensor:
        """The imaginary part [B, d] of entities without structure from their fused real part
        [B, d]: ``P·real``, or ``σ(G·real) ⊙ P·real`` (``model.imaginary: gated``)."""
        derived = self.to_imaginary(real)
        if self.gate is not None:
            derived = torch.sigmoid(self.gate(real)) * derived
        return derived

    def forward(self, ids: Tensor) -> Tensor:
        """ids [*] → [*, w]: only the rows asked for are computed."""
        flat = ids.reshape(-1)
        structure = None if self.structure is None else self.structure(flat)
        projected = {m: self.projections[m](self.feature_table(m)[flat]) for m in self.feature_modalities}
        out = self.compose(structure, projected, self.mask[flat], self.has_structure[flat])
        return out.reshape(*ids.shape, out.shape[-1])

    def all(self, fresh: FreshRows | None = None, drop_structure: Tensor | None = None) -> Tensor:
        """[N, w] for every entity (``fresh``, ``drop_structure`` [N]: as for :meth:`rows`)."""
        return self.rows(torch.arange(self.num_entities, device=self.mask.device), fresh, drop_structure)

    def for_batch(
        self,
        batch: Tensor,
        replacement: Tensor,
        *,
        fresh: Fresh | None = None,
        drop: Drop | None = None,
        linear: bool = False,
    ) -> BatchRows:
        """The representations of the entities a training batch touches, [U, w], with batch [B, 3]
        and replacement [B, K] renumbered into its rows. ``fresh``: re-encodes the positives'
        entities (fine-tuning); ``drop``: which of the U entities lose their structure
        (``train.structure_dropout``). ``linear`` (the caller scores candidates by a dot product)
        with a fusion that weighs its parts by the mask alone and parts that are whole rows (real,
        or complex under ``model.imaginary: fused``): only the batch's own heads and tails get rows
        (numbered first), the replacements are scored by :class:`LinearNegatives`."""
        # the fused row is Σ_m w_m·part_m over whole rows: real ones, or complex ones (``fused``)
        whole_parts = self.part_width == self.factor * self.dim
        factorised = linear and fresh is None and whole_parts and isinstance(self.fusion, MaskWeightedFusion)
        ids, batch, replacement = renumber_entities(batch, replacement, ends_first=factorised)
        fresh_rows = None if fresh is None else fresh(ids[torch.cat([batch[:, 0], batch[:, 2]])])
        dropped = None if drop is None else drop(len(ids))
        mask, structured = self._without_structure(self.mask[ids], self.has_structure[ids], dropped)
        if not factorised:
            return BatchRows(self.rows(ids, fresh_rows, dropped), batch, replacement, ids, structured)
        ends = int(batch[:, [0, 2]].max()) + 1  # the heads' and tails' entities: positions [0, ends)
        table = self.rows(ids[:ends], None, None if dropped is None else dropped[:ends])
        weights = self.fusion.weights(mask)
        if self.neutral:
            weights = weights * structured.unsqueeze(1).to(weights.dtype)
        negatives = LinearNegatives(self, ids, weights)
        return BatchRows(table, batch, replacement, ids, structured, negatives)

    def rows(
        self, ids: Tensor, fresh: FreshRows | None = None, drop_structure: Tensor | None = None
    ) -> Tensor:
        """ids [U] (sorted, unique) → [U, w]: the representations of those entities only (a
        training batch's: the cost grows with the batch, not with N); each projection runs only
        over the rows that have its modality.

        ``fresh`` {m: (entity ids [k], features [k, d_m])}: features that replace the cached rows
        (fine-tuning: they carry gradients to the encoder); every id must be in ``ids``.
        ``drop_structure`` [U] bool: entities represented as if they had no structure (training
        with ``train.structure_dropout``, so that features alone learn to stand in for unseen
        entities).
        """
        every = len(ids) == self.num_entities  # sorted and unique: all entities, in order (no gather)
        mask, has_structure = self._without_structure(self.mask[ids], self.has_structure[ids], drop_structure)
        structure = None
        if self.structure is not None:
            structure = self.structure.all() if every else self.structure(ids)
        projected = {}
        for m in self.feature_modalities:
            feats = self.feature_table(m)
            if self.complete[m]:
                projected[m] = self.projections[m](feats if every else feats[ids])
            else:
                have = self.mask[ids, self.modalities.index(m)].nonzero().flatten()
                out = feats.new_zeros(len(ids), self.part_width)
                projected[m] = out.index_copy(0, have, self.projections[m](feats[ids[have]]))
            if fresh and m in fresh:
                at, values = fresh[m]
                projected[m] = projected[m].index_copy(
                    0, torch.searchsorted(ids, at), self.projections[m](values)
                )
        return self.compose(structure, projected, mask, has_structure)

    def _without_structure(
        self, mask: Tensor, has_structure: Tensor, drop: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """mask [U, M], has_structure [U] with the structure of ``drop`` [U] entities removed,
        except where it is an entity's only modality."""
        if drop is None or self.structure is None:
            return mask, has_structure
        drop = drop & mask[:, 1:].any(dim=1)  # structural is the first modality
        has_structure = has_structure & ~drop
        return torch.cat([has_structure.unsqueeze(1), mask[:, 1:]], dim=1), has_structure

    # -- feature similarity -------------------------------------------------------------------
    def structured(self) -> Tensor:
        """[N] bool: entities with a structural part (those of the train split)."""
        return self.has_structure

    @property
    def feature_width(self) -> int:
        """D: the width of the :meth:`unit_rows` side by side (the feature modalities' widths added up)."""
        return sum(int(self.feature_table(m).shape[1]) for m in self.feature_modalities)

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Entity ids a, b [*] (one shape) → [*]: mean cosine over the feature modalities both
        have (0 when none, and for an entity with itself)."""
        total = torch.zeros(a.shape, device=self.mask.device)
        count = torch.zeros(a.shape, device=self.mask.device)
        for m in self.feature_modalities:
            column = self.mask[:, self.modalities.index(m)]
            unit = self.unit_table(m)
            both = (column[a] & column[b]).to(total.dtype)
            total, count = total + (unit[a] * unit[b]).sum(-1), count + both
        return torch.where(a == b, torch.zeros_like(total), total / count.clamp_min(1.0))

    @torch.no_grad()
    def similarity_in_batch(
        self, rows: BatchRows, corrupt_head: Tensor, ends: tuple[tuple[Tensor, ...], tuple[Tensor, ...]]
    ) -> tuple[Tensor, Tensor]:
        """A training batch's similarities: (positives [B], sampled corruptions [B, K]);
        ``corrupt_head`` [B, K] bool; ``ends``: the :meth:`unit_rows` of its heads and of its
        tails (gathered once by the caller, which reads them too). The corruptions are read in
        place from the unit tables (the pairs are dot products of the sampled kernel). The
        features are frozen, so no gradient flows here (the prior's weights get theirs)."""
        h, t = rows.global_ids(rows.batch[:, 0]), rows.global_ids(rows.batch[:, 2])
        replacement = rows.replaced_ids
        anchor = torch.where(corrupt_head, t.unsqueeze(1), h.unsqueeze(1))
        side = (~corrupt_head).long()  # 1: the tail is replaced, compare with the head
        pos_total = torch.zeros(len(h), device=h.device)
        neg_total = torch.zeros(replacement.shape, device=h.device)
        pos_count, neg_count = torch.zeros_like(pos_total), torch.zeros_like(neg_total)
        for m, unit_h, unit_t in zip(self.feature_modalities, *ends, strict=True):
            have = self.mask[:, self.modalities.index(m)]
            pos_total += torch.linalg.vecdot(unit_h, unit_t)
            pos_count += (have[h] & have[t]).to(pos_total.dtype)
            queries = torch.stack([unit_t, unit_h], dim=1)  # [B, 2, d_m]
            both = rows_at(have, anchor) & rows_at(have, replacement)  # [B, K]
            neg_total += self.unit_dot_sampled(m, queries, replacement, side, both)
            neg_count += both.to(neg_total.dtype)
        positive = torch.where(h == t, 0.0, pos_total / pos_count.clamp_min(1.0))
        negative = torch.where(replacement == anchor, 0.0, neg_total / neg_count.clamp_min(1.0))
        return positive, negative

    def similarity_to_all(self, query: Tensor, among: Tensor | None = None) -> Tensor:
        """Entity ids [B] → [B, N]: :meth:`similarity` of each with every entity (with the entity
        ids ``among`` [P] only: [B, P])."""
        columns = {m: self.mask[query, self.modalities.index(m)] for m in self.feature_modalities}
        rows = {m: self.unit_table(m)[query] for m in self.feature_modalities}
        out = self._similarity_rows(rows, columns, among)
        if among is None:
            out[torch.arange(len(query), device=out.device), query] = 0.0
        else:  # an entity is not its own neighbour, where it is among the candidates
            out.masked_fill_(query.unsqueeze(1) == among.unsqueeze(0), 0.0)
        return out

    def similarity_to_features(self, features: Mapping[str, Tensor]) -> Tensor:
        """A new entity's features {m: [B, d_m]} (modalities not given: absent) → [B, N]: the
        mean cosine with every entity over the modalities both have (0 when none)."""
        b = next(iter(features.values())).shape[0]
        given = {
            m: F.normalize(f.to(self.mask.device), dim=-1)
            for m, f in features.items()
            if m in self.feature_modalities
        }
        have = {m: torch.ones(b, dtype=torch.bool, device=self.mask.device) for m in given}
        return self._similarity_rows(given, have)

    def unit_of_features(self, features: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
        """A new entity's features {m: [B, d_m]} → its normalised rows, [B, d_m] each, as
        :meth:`unit_rows` (zeros for a modality not given)."""
        b = next(iter(features.values())).shape[0]
        blocks = []
        for m in self.feature_modalities:
            width = self.feature_table(m).shape[1]
            given = features.get(m)
            blocks.append(
                F.normalize(given.to(self.mask.device), dim=-1)
                if given is not None
                else torch.zeros(b, width, device=self.mask.device)
            )
        return tuple(blocks)

    def _similarity_rows(
        self, rows: Mapping[str, Tensor], have: Mapping[str, Tensor], among: Tensor | None = None
    ) -> Tensor:
        """Normalised query features {m: [B, d_m]} present where ``have`` {m: [B] bool} → [B, N]
        mean cosine with every entity (of ``among`` [P]: [B, P]) over the modalities both have."""
        b = next(iter(rows.values())).shape[0]
        width = self.num_entities if among is None else len(among)
        total = torch.zeros(b, width, device=self.mask.device)
        count = torch.zeros_like(total)
        for m, query in rows.items():
            column = self.mask[:, self.modalities.index(m)].to(total.dtype)
            unit = self.unit_table(m)
            if among is not None:
                column, unit = column[among], unit[among]
            both = have[m].to(total.dtype).unsqueeze(1) * column.unsqueeze(0)
            total += (query * have[m].unsqueeze(1).to(query.dtype)) @ unit.T
            count += both
        return total / count.clamp_min(1.0)

    def new_entity(self, features: dict[str, Tensor]) -> Tensor:
        """A new entity (no structure) from its features {m: [B, d_m]} → [B, w]; modalities not
        given count as absent."""
        b = next(iter(features.values())).shape[0]
        dev = self.mask.device
        feats, cols = {}, []
        for m in self.modalities:
            if m in features:
                feats[m] = features[m].to(dev)
                cols.append(torch.ones(b, dtype=torch.bool, device=dev))
            else:
                if m in self.feature_modalities:
                    feats[m] = torch.zeros(b, self.feature_table(m).shape[1], device=dev)
                cols.append(torch.zeros(b, dtype=torch.bool, device=dev))
        structure = None
        if self.structure is not None:
            structure = torch.zeros(b, self.factor * self.dim, device=dev)
        mask = torch.stack(cols, dim=1)
        if not bool(mask.any(1).all()):
            raise InputError(
                f"the query has none of the run's modalities ({', '.join(self.feature_modalities)})",
                hint="give --image and/or --text for the modalities the run was trained with",
            )
        projected = {m: self.projections[m](f) for m, f in feats.items()}
        return self.compose(structure, projected, mask, torch.zeros(b, dtype=torch.bool, device=dev))

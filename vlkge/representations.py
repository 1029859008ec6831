"""Multimodal entity representations (GUIDE §3.1): structure + frozen features, fused.

Per entity there is a structural row (trainable; only for entities that occur in the train split)
and, per feature modality (``visual`` = the store's ``image``, ``textual`` = its ``text``), a frozen
feature vector with a learned linear projection to the real width ``d``. A mask [N, M] says which
of the ``model.modalities`` each entity has; :mod:`vlkge.fusion` combines the present ones.

Widths: TransE/DistMult entities are ``[d]``; ComplEx/RotatE entities are ``[real | imaginary]``
(``2d``). The fused vector is the real part. The imaginary part is the structural table's own for
entities with structure; for entities without it (inductive, or runs without ``structural``) it is
derived from the fused real part, ``P·real`` (``model.imaginary: projection``) or
``σ(G·real) ⊙ P·real`` (``gated``), so P and G get gradients from those entities.

Entities with no modality and no structure have no representation: they are reported, and
evaluation excludes them (as queries and as candidates) with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vlkge.errors import ConfigError, InputError
from vlkge.features import FeatureTable, load_features, read_sidecar
from vlkge.fusion import make_fusion
from vlkge.graph import Graph

log = logging.getLogger(__name__)

STRUCTURAL = "structural"
#: model modality → the feature store's modality directory
FEATURE_MODALITIES = {"visual": "image", "textual": "text"}
MODALITIES = (STRUCTURAL, *FEATURE_MODALITIES)
IMAGINARY = ("projection", "gated")


def parse_modalities(value: Any) -> list[str]:
    """``model.modalities`` (a list or a comma-separated string) → the canonical ordered list."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(x).strip().lower() for x in items if str(x).strip()]
    unknown = sorted(set(names) - set(MODALITIES))
    if unknown or not names:
        raise ConfigError(
            f"modalities {names or '[]'}: {'unknown ' + ', '.join(unknown) if unknown else 'none given'}",
            key="model.modalities",
            hint=f"any non-empty subset of {', '.join(MODALITIES)}",
        )
    return [m for m in MODALITIES if m in names]


def is_multimodal(params: dict[str, Any]) -> bool:
    """True when the model reads features (any modality besides ``structural``)."""
    return parse_modalities(params["model"].get("modalities", [STRUCTURAL])) != [STRUCTURAL]


def store_dir_for(graph: Graph, params: dict[str, Any]) -> Path:
    """The feature store a run reads: ``<dataset dir>/features/<model.features or encode store>``."""
    name = params["model"].get("features") or params["encode"].get("store") or params["encode"]["model"]
    return graph.root.parent / "features" / name


# ----------------------------------------------------------------------------- inputs


@dataclass
class EntityInputs:
    """What multimodal representations are built from, for one graph.

    ``features[m]``: dense frozen features [N, d_m] (zero rows where absent) and ``present[m]``
    [N] bool, for each feature modality used; ``has_structure`` [N] bool; ``record``: per store
    modality the manifest facts a run keeps (fingerprint, dim, encoder) to refuse another store.
    """

    num_entities: int
    features: dict[str, Tensor] = field(default_factory=dict)
    present: dict[str, Tensor] = field(default_factory=dict)
    has_structure: Tensor | None = None
    record: dict[str, Any] = field(default_factory=dict)


def check_feature_table(table: FeatureTable, graph: Graph, mod_dir: Path) -> None:
    """Refuse features that do not fit ``graph``: dim differing from the manifest, ids beyond
    the entity count or repeated, NaN/inf rows, or a text store made from another graph's texts."""
    manifest = table.manifest
    if table.values.ndim != 2 or table.dim != int(manifest["dim"]):
        raise InputError(
            f"features have dim {tuple(table.values.shape)[1:]} but the manifest says {manifest['dim']}",
            path=mod_dir,
            hint="re-encode the store (`vlkge encode --force`)",
        )
    n = graph.num_entities
    ids = table.ids
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise InputError(
            f"feature ids reach {int(ids.max())} but the graph has {n} entities: "
            "this store was made for another graph",
            path=mod_dir,
            hint="encode this graph (`vlkge encode`) or point model.features at its store",
        )
    if torch.unique(ids).numel() != ids.numel():
        raise InputError("an entity has more than one feature row", path=mod_dir)
    bad = ~torch.isfinite(table.values).all(dim=1)
    if bad.any():
        shown = ", ".join(graph.entity_keys[i] for i in ids[bad][:5].tolist())
        raise InputError(
            f"{int(bad.sum())} feature row(s) hold NaN or inf (entities {shown})",
            path=mod_dir,
            hint="re-encode the store; the encoder produced non-finite vectors",
        )
    _check_same_graph(graph, mod_dir, manifest)


def _check_same_graph(graph: Graph, mod_dir: Path, manifest: dict[str, Any]) -> None:
    """The text store's per-shard input hashes (ids and texts) must match this graph's texts;
    image rows must belong to entities that have images here."""
    from vlkge.encoding import IMAGE, TEXT, EncodeOptions, plan_modality

    modality = manifest.get("modality")
    if modality == IMAGE:
        has_image = torch.from_numpy((graph.entities["images"].list.len().fill_null(0) > 0).to_numpy())
        ids = load_ids(mod_dir, manifest)
        if ids.numel() and not bool(has_image[ids].all()):
            raise InputError(
                "the image store holds entities that have no image in this graph: "
                "it was made for another graph",
                path=mod_dir,
                hint="encode this graph (`vlkge encode`)",
            )
        return
    if modality != TEXT:
        return
    sidecars = [read_sidecar(mod_dir, i) for i in range(int(manifest["num_shards"]))]
    if any(s is None for s in sidecars):
        return  # check_store reports a damaged store; nothing to compare here
    shard_rows = int(sidecars[0]["planned"]) if len(sidecars) > 1 else max(1, graph.num_entities)
    template = manifest.get("settings", {}).get("text_template", "{text}")
    plan = plan_modality(graph, TEXT, EncodeOptions(text_template=template, shard_rows=shard_rows))
    same = plan.num_shards == len(sidecars) and all(
        s.get("inputs_sha256") == plan.inputs_sha256(i) for i, s in enumerate(sidecars)
    )
    if not same:
        raise InputError(
            "the text features were made from other entities or texts than this graph's "
            f"({graph.num_entities} entities): a store for another graph",
            path=mod_dir,
            hint="re-run `vlkge encode` on this graph",
        )


def load_ids(mod_dir: Path, manifest: dict[str, Any]) -> Tensor:
    import pyarrow.parquet as pq

    column = manifest["id_column"]
    parts = [
        pq.read_table(mod_dir / s["name"], columns=[column]).column(column).to_numpy()
        for s in manifest["shards"]
    ]
    return (
        torch.from_numpy(np.concatenate(parts).astype(np.int64))
        if parts
        else torch.zeros(0, dtype=torch.long)
    )


def load_entity_inputs(graph: Graph, params: dict[str, Any], store_dir: Path | None = None) -> EntityInputs:
    """Read the features the run's ``model.modalities`` need from the store, checked against
    ``graph``; mark which entities have structure (those in the train split)."""
    modalities = parse_modalities(params["model"]["modalities"])
    n = graph.num_entities
    inputs = EntityInputs(num_entities=n)
    inputs.has_structure = graph.in_train() if STRUCTURAL in modalities else torch.zeros(n, dtype=torch.bool)
    wanted = [m for m in modalities if m in FEATURE_MODALITIES]
    if not wanted:
        return inputs
    store = Path(store_dir) if store_dir is not None else store_dir_for(graph, params)
    for modality in wanted:
        mod_dir = store / FEATURE_MODALITIES[modality]
        if not (mod_dir / "manifest.json").is_file():
            raise InputError(
                f"the {modality} modality needs {FEATURE_MODALITIES[modality]} features, "
                "and the store has none",
                path=mod_dir,
                hint="run `vlkge encode` first, or drop the modality from model.modalities",
            )
        table = load_features(mod_dir, graph=graph)  # refuses a store of another graph version
        check_feature_table(table, graph, mod_dir)
        matrix, present = table.dense(n)
        inputs.features[modality] = matrix
        inputs.present[modality] = present
        inputs.record[modality] = {
            "store": str(store),
            "dir": str(mod_dir),
            "fingerprint": table.manifest["fingerprint"],
            "dim": table.dim,
            "rows": int(table.ids.numel()),
            "encoder": table.manifest.get("encoder", {}),
            "normalisation": table.manifest.get("normalisation"),
            "text_template": table.manifest.get("settings", {}).get("text_template"),
        }
    return inputs


def check_record(inputs: EntityInputs, recorded: dict[str, Any], path: Path) -> None:
    """Refuse a store whose features differ from those a run was trained on."""
    for modality, rec in recorded.items():
        now = inputs.record.get(modality)
        if now is None or now["fingerprint"] != rec["fingerprint"] or now["rows"] != rec["rows"]:
            raise InputError(
                f"the {modality} features in the store differ from those the run was trained on",
                path=path,
                hint=f"re-encode with the run's encoder settings ({rec.get('encoder', {}).get('id')})",
            )


# ----------------------------------------------------------------------------- the module


class EntityRepresentations(nn.Module):
    """Fused entity representations: ``forward(ids [*])`` → [*, w]; ``all()`` → [N, w].

    ``w = factor·d`` with ``factor`` 1 (real backbones) or 2 (complex: ``[real | imaginary]``).
    """

    def __init__(
        self,
        inputs: EntityInputs,
        modalities: list[str],
        dim: int,
        factor: int,
        *,
        fusion: str = "average",
        imaginary: str = "projection",
        init: str = "xavier_uniform",
    ) -> None:
        super().__init__()
        from vlkge.model import StructuralEmbedding

        if imaginary not in IMAGINARY:
            raise ConfigError(
                f"unknown imaginary part {imaginary!r}", key="model.imaginary", hint=" or ".join(IMAGINARY)
            )
        self.modalities = modalities
        self.feature_modalities = [m for m in modalities if m in FEATURE_MODALITIES]
        self.dim, self.factor = dim, factor
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
        for m in self.feature_modalities:
            feats = inputs.features[m]
            self.register_buffer(f"features_{m}", feats, persistent=False)
            self.projections[m] = nn.Linear(feats.shape[1], dim)
        columns = [has_structure if m == STRUCTURAL else inputs.present[m] for m in modalities]
        self.register_buffer("mask", torch.stack(columns, dim=1), persistent=False)  # [N, M]
        self.fusion = make_fusion(fusion, len(modalities), dim)
        self.imaginary = imaginary
        if factor == 2:
            self.to_imaginary = nn.Linear(dim, dim)
            self.gate = nn.Linear(dim, dim) if imaginary == "gated" else None

    # -- what each entity has ---------------------------------------------------------------
    @property
    def present(self) -> Tensor:
        """[N] bool: entities with at least one modality (the others have no representation)."""
        return self.mask.any(dim=1)

    def feature_dims(self) -> dict[str, int]:
        return {m: int(getattr(self, f"features_{m}").shape[1]) for m in self.feature_modalities}

    # -- composition --------------------------------------------------------------------------
    def compose(
        self, structure: Tensor | None, projected: dict[str, Tensor], mask: Tensor, has_structure: Tensor
    ) -> Tensor:
        """structure [B, factor·d] or None, projected features {m: [B, d]}, mask [B, M],
        has_structure [B] → [B, factor·d]."""
        parts = [structure[:, : self.dim] if m == STRUCTURAL else projected[m] for m in self.modalities]
        real = self.fusion(torch.stack(parts, dim=1), mask)
        if self.factor == 1:
            return real
        derived = self.to_imaginary(real)
        if self.gate is not None:
            derived = torch.sigmoid(self.gate(real)) * derived
        if structure is None:
            return torch.cat([real, derived], dim=-1)
        imag = torch.where(has_structure.unsqueeze(-1), structure[:, self.dim :], derived)
        return torch.cat([real, imag], dim=-1)

    def forward(self, ids: Tensor) -> Tensor:
        """ids [*] → [*, w]: only the rows asked for are computed."""
        flat = ids.reshape(-1)
        structure = None if self.structure is None else self.structure(flat)
        projected = {
            m: self.projections[m](getattr(self, f"features_{m}")[flat]) for m in self.feature_modalities
        }
        out = self.compose(structure, projected, self.mask[flat], self.has_structure[flat])
        return out.reshape(*ids.shape, out.shape[-1])

    def all(
        self, fresh: dict[str, tuple[Tensor, Tensor]] | None = None, drop_structure: Tensor | None = None
    ) -> Tensor:
        """[N, w] for every entity (``fresh``, ``drop_structure`` [N]: as for :meth:`rows`)."""
        return self.rows(torch.arange(self.num_entities, device=self.mask.device), fresh, drop_structure)

    def rows(
        self,
        ids: Tensor,
        fresh: dict[str, tuple[Tensor, Tensor]] | None = None,
        drop_structure: Tensor | None = None,
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
            feats = getattr(self, f"features_{m}")
            if self.complete[m]:
                projected[m] = self.projections[m](feats if every else feats[ids])
            else:
                have = self.mask[ids, self.modalities.index(m)].nonzero().flatten()
                out = feats.new_zeros(len(ids), self.dim)
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
                    feats[m] = torch.zeros(b, getattr(self, f"features_{m}").shape[1], device=dev)
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


def report_missing(reps: EntityRepresentations, graph: Graph) -> list[str]:
    """Keys of entities with no modality and no structure, logged as one warning."""
    absent = (~reps.present).nonzero().flatten().tolist()
    if absent:
        shown = ", ".join(graph.entity_keys[i] for i in absent[:10]) + (" …" if len(absent) > 10 else "")
        log.warning(
            "%d entit%s have no modality and no structure and are excluded from evaluation: %s",
            len(absent),
            "y" if len(absent) == 1 else "ies",
            shown,
        )
    return [graph.entity_keys[i] for i in absent]

"""Feature stores: the files on disk (:mod:`~vlkge.features.store`), what each modality encodes
(:mod:`~vlkge.features.plan`) and what a model reads from a store, checked against its graph
(:mod:`~vlkge.features.inputs`)."""

from __future__ import annotations

from vlkge.features.inputs import EntityInputs, available_stores, load_entity_inputs, store_dir_for
from vlkge.features.plan import ModalityPlan, plan_modality, relation_words
from vlkge.features.store import (
    MANIFEST,
    FeatureTable,
    IncompleteStoreError,
    check_store,
    load_features,
    merge_store,
    read_manifest,
    read_sidecar,
    shard_is_complete,
    shard_name,
    write_shard,
)

__all__ = [
    "MANIFEST",
    "EntityInputs",
    "FeatureTable",
    "IncompleteStoreError",
    "ModalityPlan",
    "available_stores",
    "check_store",
    "load_entity_inputs",
    "load_features",
    "merge_store",
    "plan_modality",
    "read_manifest",
    "read_sidecar",
    "relation_words",
    "shard_is_complete",
    "shard_name",
    "store_dir_for",
    "write_shard",
]

"""Fine-tuning the feature encoder with the KGE layers (``train.frozen: false``).

Per batch, the entities of the positive triples are re-encoded from their images and texts with
gradients through what the encoder unfreezes (:meth:`~vlkge.encoders.base.Encoder.trainable_modules`:
its last ``train.finetune_layers`` blocks and output projections); every other row of the feature
tables is the cached feature, refreshed (detached) with each re-encoded row. Before each
validation and at the end, every entity is re-encoded, so evaluation sees the tuned encoder
everywhere. The tuned features and the encoder's trainable weights are saved with the model.

Encoders that cannot be fine-tuned (``lite``, ``blip``) raise a ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkge.config import Config
from vlkge.encoders import Encoder
from vlkge.encoders.images import load_image
from vlkge.errors import InputError
from vlkge.features.plan import plan_modality
from vlkge.graph import Graph
from vlkge.modalities import IMAGE, TEXT
from vlkge.representations import EntityRepresentation
from vlkge.runs import store_encoder


class EncoderTuner:
    """Streams entity images and texts through a partly unfrozen encoder (see module doc)."""

    def __init__(
        self, encoder: Encoder, graph: Graph, reps: EntityRepresentation, record: dict[str, Any], layers: int
    ):
        unfreeze = encoder.trainable_modules(layers)
        self.encoder, self.reps, self.record = encoder, reps, record
        encoder.model.requires_grad_(False)
        for part in unfreeze:
            part.requires_grad_(True)
        self.params = [p for p in encoder.model.parameters() if p.requires_grad]
        self.texts: list[str | None] = [None] * graph.num_entities
        self.pixels: dict[int, Tensor] = {}
        if "textual" in reps.feature_modalities:
            template = record["textual"].get("text_template") or "{text}"
            plan = plan_modality(graph, TEXT, text_template=template)
            for i, text in zip(plan.ids.tolist(), plan.inputs, strict=True):
                self.texts[i] = text
        if "visual" in reps.feature_modalities:
            plan = plan_modality(graph, IMAGE)
            for i, files in zip(plan.ids.tolist(), plan.files, strict=True):
                decoded = [load_image(Path(f), encoder.image_transform)[0] for f in files]
                decoded = [x for x in decoded if x is not None]
                if decoded:
                    self.pixels[i] = torch.stack(decoded)
        self.normalize = {m: rec.get("normalisation") == "l2" for m, rec in record.items()}

    @classmethod
    def for_run(
        cls, config: Config, graph: Graph, reps: EntityRepresentation, record: dict[str, Any]
    ) -> EncoderTuner:
        """The encoder that made the run's features (checked by weights hash), in float32 on
        ``train.device``, with ``train.finetune_layers`` unfrozen."""
        encoder = store_encoder(config, record, device=config.train.device, precision="fp32")
        return cls(encoder, graph, reps, record, config.train.finetune_layers)

    def parameters(self) -> list[nn.Parameter]:
        return self.params

    def _has(self, modality: str, entity: int) -> bool:
        return self.texts[entity] is not None if modality == "textual" else entity in self.pixels

    def _encode(self, modality: str, ids: list[int]) -> Tensor:
        """[len(ids), d_m] with gradients (ids all have the modality)."""
        dev = self.encoder.device
        if modality == "textual":
            out = self.encoder.tune_texts([self.texts[i] for i in ids])
        else:
            stacks = [self.pixels[i] for i in ids]
            counts = torch.tensor([len(s) for s in stacks], device=dev)
            vectors = self.encoder.tune_images(torch.cat(stacks))
            if self.normalize.get(modality):
                vectors = F.normalize(vectors, dim=1)
            owner = torch.repeat_interleave(torch.arange(len(ids), device=dev), counts)
            out = torch.zeros(len(ids), vectors.shape[1], device=dev).index_add(0, owner, vectors)
            out = out / counts.unsqueeze(1)
        if not torch.isfinite(out).all():
            raise InputError("the fine-tuned encoder produced non-finite features", hint="lower finetune_lr")
        return F.normalize(out, dim=1) if self.normalize.get(modality) else out

    def fresh(self, entity_ids: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """Re-encode ``entity_ids`` with gradients: {modality: (rows [k], features [k, d_m])}; the
        cached tables get the detached values."""
        self.encoder.model.train()
        out = {}
        ids = torch.unique(entity_ids).tolist()
        for m in self.reps.feature_modalities:
            have = [i for i in ids if self._has(m, i)]
            if not have:
                continue
            feats = self._encode(m, have)
            table = self.reps.feature_table(m)
            rows = torch.tensor(have, device=feats.device)
            table[rows] = feats.detach().to(table.device)
            out[m] = (rows, feats)
        return out

    @torch.no_grad()
    def refresh_all(self, batch: int = 256) -> None:
        """Re-encode every entity into the cached tables (no gradients)."""
        self.encoder.model.eval()
        for m in self.reps.feature_modalities:
            ids = [i for i in range(len(self.texts)) if self._has(m, i)]
            table = self.reps.feature_table(m)
            for s in range(0, len(ids), batch):
                chunk = ids[s : s + batch]
                table[torch.tensor(chunk)] = self._encode(m, chunk).to(table.device)

    def state_dict(self) -> dict[str, Tensor]:
        """The encoder's trainable weights (what a fine-tuned run saves)."""
        names = {id(p): n for n, p in self.encoder.model.named_parameters()}
        return {names[id(p)]: p.detach().cpu() for p in self.params}

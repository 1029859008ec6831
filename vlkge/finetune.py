"""Fine-tuning the feature encoder with the KGE layers (``train.frozen: false``).

Per batch, the entities of the positive triples are re-encoded from their images and texts with
gradients through the encoder's last ``train.finetune_layers`` blocks (and its output
projection); every other row of the feature tables is the cached feature, refreshed (detached)
with each re-encoded row. Before each validation and at the end, every entity is re-encoded, so
evaluation sees the tuned encoder everywhere. The tuned features and the encoder's trainable
weights are saved with the model.

Supported encoders: the open_clip family (``clip``, ``tiny-clip``); others raise a ConfigError.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkge.errors import ConfigError, InputError
from vlkge.graph import Graph
from vlkge.registry import Registry
from vlkge.representations import EntityRepresentations

#: encoder name → function(encoder, layers) returning the modules to unfreeze
UNFREEZE: Registry[Callable[[Any, int], list[nn.Module]]] = Registry("fine-tunable encoder")


def _clip_trainable(encoder: Any, layers: int) -> list[nn.Module]:
    model = encoder.model
    visual, text = model.visual, model.transformer
    modules: list[nn.Module] = [visual.ln_post, model.ln_final]
    if layers:
        modules += list(visual.transformer.resblocks[-layers:]) + list(text.resblocks[-layers:])
    return modules


UNFREEZE.register("clip")(_clip_trainable)
UNFREEZE.register("tiny-clip")(_clip_trainable)


def _clip_extra(encoder: Any) -> list[nn.Parameter]:
    """The output projections (parameters, not modules, in open_clip)."""
    out = []
    for owner, name in ((encoder.model.visual, "proj"), (encoder.model, "text_projection")):
        p = getattr(owner, name, None)
        if isinstance(p, nn.Parameter):
            out.append(p)
    return out


class EncoderTuner:
    """Streams entity images and texts through a partly unfrozen encoder (see module doc)."""

    def __init__(
        self, encoder: Any, graph: Graph, reps: EntityRepresentations, record: dict[str, Any], layers: int
    ):
        if encoder.name not in UNFREEZE:
            raise ConfigError(
                f"fine-tuning is not implemented for the {encoder.name!r} encoder",
                key="train.frozen",
                hint=f"fine-tune one of: {', '.join(UNFREEZE.names())}; or train with --frozen",
            )
        from vlkge.encoding import IMAGE, TEXT, EncodeOptions, plan_modality

        self.encoder, self.reps, self.record = encoder, reps, record
        model = encoder.model
        model.requires_grad_(False)
        for module in UNFREEZE.get(encoder.name)(encoder, layers):
            module.requires_grad_(True)
        for p in _clip_extra(encoder):
            p.requires_grad_(True)
        self.params = [p for p in model.parameters() if p.requires_grad]
        n = graph.num_entities
        self.texts: list[str | None] = [None] * n
        self.pixels: dict[int, Tensor] = {}
        if "textual" in reps.feature_modalities:
            template = record["textual"].get("text_template") or "{text}"
            plan = plan_modality(graph, TEXT, EncodeOptions(text_template=template))
            for i, text in zip(plan.ids.tolist(), plan.inputs, strict=True):
                self.texts[i] = text
        if "visual" in reps.feature_modalities:
            from vlkge.encoding import load_image

            plan = plan_modality(graph, IMAGE, EncodeOptions())
            for i, files in zip(plan.ids.tolist(), plan.files, strict=True):
                decoded = [load_image(Path(f), encoder.image_transform)[0] for f in files]
                decoded = [x for x in decoded if x is not None]
                if decoded:
                    self.pixels[i] = torch.stack(decoded)
        self.normalize = {m: rec.get("normalisation") == "l2" for m, rec in record.items()}

    def parameters(self) -> list[nn.Parameter]:
        return self.params

    def _encode(self, modality: str, ids: list[int]) -> Tensor:
        """[len(ids), d_m] with gradients (ids all have the modality)."""
        model, dev = self.encoder.model, self.encoder.device
        if modality == "textual":
            tokens = self.encoder.tokenizer([self.texts[i] for i in ids]).to(dev)
            out = model.encode_text(tokens).float()
        else:
            stacks = [self.pixels[i] for i in ids]
            counts = torch.tensor([len(s) for s in stacks], device=dev)
            vectors = model.encode_image(torch.cat(stacks).to(dev)).float()
            if self.normalize.get(modality):
                vectors = F.normalize(vectors, dim=1)
            owner = torch.repeat_interleave(torch.arange(len(ids), device=dev), counts)
            out = torch.zeros(len(ids), vectors.shape[1], device=dev).index_add(0, owner, vectors)
            out = out / counts.unsqueeze(1)
        if not torch.isfinite(out).all():
            raise InputError("the fine-tuned encoder produced non-finite features", hint="lower finetune_lr")
        return F.normalize(out, dim=1) if self.normalize.get(modality) else out

    def fresh(self, entity_ids: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """Re-encode ``entity_ids`` (unique) with gradients: {modality: (rows [k], features [k, d_m])};
        the cached tables get the detached values."""
        self.encoder.model.train()
        out = {}
        ids = torch.unique(entity_ids).tolist()
        for m in self.reps.feature_modalities:
            have = [i for i in ids if (self.texts[i] is not None if m == "textual" else i in self.pixels)]
            if not have:
                continue
            feats = self._encode(m, have)
            rows = torch.tensor(have, device=feats.device)
            getattr(self.reps, f"features_{m}")[rows] = feats.detach().to(self.reps.mask.device)
            out[m] = (rows, feats)
        return out

    @torch.no_grad()
    def refresh_all(self, batch: int = 256) -> None:
        """Re-encode every entity into the cached tables (no gradients)."""
        self.encoder.model.eval()
        for m in self.reps.feature_modalities:
            ids = [
                i
                for i in range(len(self.texts))
                if (self.texts[i] is not None if m == "textual" else i in self.pixels)
            ]
            table = getattr(self.reps, f"features_{m}")
            for s in range(0, len(ids), batch):
                chunk = ids[s : s + batch]
                table[torch.tensor(chunk)] = self._encode(m, chunk).to(table.device)

    def state_dict(self) -> dict[str, Tensor]:
        """The encoder's trainable weights (what a fine-tuned run saves)."""
        names = {id(p): n for n, p in self.encoder.model.named_parameters()}
        return {names[id(p)]: p.detach().cpu() for p in self.params}

"""Adagrad with a row-wise path for sparse gradients (large entity tables).

``torch.optim.Adagrad`` handles a sparse gradient by coalescing it, adding a sparse square into
the dense state, masking the state back out and adding a sparse step: many full passes over the
touched rows, plus the coalescing of every sparse piece autograd accumulated. :class:`RowAdagrad`
does the same update in one sum over duplicate rows and a handful of row gathers/scatters:

    g_u = Σ rows of g with index u          (over the touched rows u only)
    sum_u += g_u²;  param_u -= lr_t · g_u / (√sum_u + eps)

— exactly the dense update (untouched rows have g = 0 and do not move). Dense gradients take
torch's own path. The state (``sum``, ``step``) and hyper-parameters are Adagrad's, so checkpoints
are interchangeable with ``torch.optim.Adagrad``'s. On the CPU the dense update is torch's fused
kernel (one pass over a table instead of five).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class RowAdagrad(torch.optim.Adagrad):
    """``torch.optim.Adagrad`` whose sparse-gradient update works on the touched rows only."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, **options: Any) -> None:
        params = list(params)
        options.setdefault("fused", _fusable(params) and not options.get("foreach"))
        super().__init__(params, lr=lr, **options)
        self._fused = [group["fused"] for group in self.param_groups]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as torch does, keeping this optimiser's choice of kernel (a checkpoint may come
        from another device)."""
        super().load_state_dict(state_dict)
        for group, fused in zip(self.param_groups, self._fused, strict=True):
            group["fused"] = fused

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        held: list[tuple[Tensor, Tensor]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or not p.grad.is_sparse:
                    continue
                if group["weight_decay"] or group["maximize"]:
                    continue  # torch's path (it refuses weight decay on sparse gradients)
                self._row_step(p, p.grad, group)
                held.append((p, p.grad))
                p.grad = None  # the dense step below skips it
        try:
            super().step()
        finally:
            for p, grad in held:
                p.grad = grad
        return loss

    def _row_step(self, param: Tensor, grad: Tensor, group: dict) -> None:
        state = self.state[param]
        state["step"] += 1
        clr = group["lr"] / (1 + (float(state["step"]) - 1) * group["lr_decay"])
        index, values = grad._indices()[0], grad._values()
        if grad.is_coalesced():
            rows, summed = index, values
        else:
            rows, where = torch.unique(index, return_inverse=True)
            summed = torch.zeros(len(rows), values.shape[1], dtype=values.dtype, device=values.device)
            summed.index_add_(0, where, values)
        total = state["sum"].index_select(0, rows).addcmul_(summed, summed)
        state["sum"].index_copy_(0, rows, total)
        param.index_add_(0, rows, summed / total.sqrt_().add_(group["eps"]), alpha=-clr)


def _fusable(params: list[Any]) -> bool:
    """Whether torch's fused Adagrad (CPU only) takes these parameters (tensors, or groups of
    them): all floating point on the CPU."""
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return all(t.device.type == "cpu" and t.is_floating_point() for t in tensors)


class OptimizerPair:
    """Two optimisers stepped together: the tables' (``train.optimizer``) and the shared dense
    layers' (``train.shared_optimizer``), with one state dict for checkpoints."""

    def __init__(self, tables: torch.optim.Optimizer, shared: torch.optim.Optimizer) -> None:
        self.parts = (tables, shared)

    @property
    def param_groups(self) -> list[dict]:
        return [g for part in self.parts for g in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def state_dict(self) -> dict:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state: dict) -> None:
        for part, part_state in zip(self.parts, state["parts"], strict=True):
            part.load_state_dict(part_state)

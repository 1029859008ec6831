"""Run by tests/test_ddp.py under ``torchrun --nproc_per_node=2``: a fine-tuning VL run on the tiny
graph at ``argv[1]``; rank 0 prints every rank's checksums of its encoder's trainable layers and of
its model, which must agree (one model, one encoder, trained on both ranks' batches)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from tests.vl_data import vl_params
from vlkge.distributed import make_trainer
from vlkge.graph import read_graph


def checksums(parameters: list[torch.Tensor]) -> torch.Tensor:
    flat = torch.cat([p.detach().double().flatten() for p in parameters])
    return torch.stack([flat.sum(), flat.abs().sum()])


def main(data: Path) -> None:
    graph = read_graph(data / "tiny-vl" / "graph")
    params = vl_params(votes=0.5, vote_neighbours=4).updated(
        {"train": {"frozen": False, "epochs": 2, "finetune_layers": 1}}
    )
    trainer = make_trainer(graph, params, data / "run")
    trainer.fit(show=False, log=None)
    mine = torch.cat([checksums(trainer.tuner.parameters()), checksums(list(trainer.model.parameters()))])
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    if dist.get_rank() == 0:
        print("RANKS", *(",".join(f"{v:.12e}" for v in sums.tolist()) for sums in every))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

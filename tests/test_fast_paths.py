"""The fast paths give the plain computation's results: the sampled kernel (dense and sparse
gradients), row-wise sparse Adagrad training, and evaluation chunked to a memory budget."""

from __future__ import annotations

import platform

import pytest
import torch

from vlkge import training
from vlkge.config import load_config
from vlkge.devices import keep_freed_host_memory
from vlkge.evaluation import BYTES_PER_SCORE, chunk_rows, evaluate
from vlkge.gathered import sampled_dot
from vlkge.optim import RowAdagrad
from vlkge.training import Trainer


@pytest.mark.parametrize("sides", [1, 2])
@pytest.mark.parametrize("sparse", [False, True])
def test_sampled_dot_matches_gathering(sides, sparse):
    gen = torch.Generator().manual_seed(sides)
    b, k, w, n = 13, 7, 5, 11  # duplicates among the 91 sampled rows of 11
    queries = torch.randn(b, sides, w, dtype=torch.float64, generator=gen, requires_grad=True)
    table = torch.randn(n, w, dtype=torch.float64, generator=gen, requires_grad=True)
    index = torch.randint(0, n, (b, k), generator=gen)
    side = torch.randint(0, sides, (b, k), generator=gen)
    chosen = queries.gather(1, side.unsqueeze(-1).expand(b, k, w))
    expected = (chosen * table[index]).sum(-1)
    weight = torch.randn(b, k, dtype=torch.float64, generator=gen)
    want_q, want_t = torch.autograd.grad(expected, (queries, table), weight)
    got = sampled_dot(queries, table, index, side, sparse)
    torch.testing.assert_close(got, expected)
    got_q, got_t = torch.autograd.grad(got, (queries, table), weight)
    assert got_t.is_sparse == sparse
    torch.testing.assert_close(got_q, want_q)
    torch.testing.assert_close(got_t.to_dense(), want_t)
    if not sparse:
        assert torch.autograd.gradcheck(lambda q, t: sampled_dot(q, t, index, side), (queries, table))


def test_sampled_dot_reorders_pairs_that_changed_in_place():
    """The pairs' order is reused for equal pairs (several tables scored over one step's pairs),
    never for a tensor written into since."""
    gen = torch.Generator().manual_seed(0)
    queries, table = torch.randn(4, 2, 3, generator=gen), torch.randn(9, 3, generator=gen)
    index, side = torch.randint(0, 9, (4, 5), generator=gen), torch.randint(0, 2, (4, 5), generator=gen)
    for _ in range(2):
        chosen = queries.gather(1, side.unsqueeze(-1).expand(4, 5, 3))
        torch.testing.assert_close(sampled_dot(queries, table, index, side), (chosen * table[index]).sum(-1))
        torch.testing.assert_close(
            sampled_dot(queries, table, index.clone(), side), (chosen * table[index]).sum(-1)
        )
        index.add_(1).remainder_(9)
        side.sub_(1).abs_()


@pytest.mark.parametrize("backbone", ["distmult", "rotate"])
def test_sparse_rowwise_adagrad_trains_as_dense(demo_graph, tmp_path, backbone):
    params = load_config(
        overrides={
            "model": {"dim": 16, "backbone": backbone},
            "train": {"epochs": 2, "batch_size": 64, "negatives": 4, "device": "cpu"},
            "seed": 3,
        }
    )
    runs = []
    for sparse in (False, True):
        trainer = Trainer(demo_graph, params, tmp_path / str(sparse))
        trainer.model.entity.sparse = sparse
        losses = [trainer.train_epoch(e, show=False)["loss"] for e in (1, 2)]
        runs.append((losses, trainer.model.state_dict()))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5)
    for name, dense in runs[0][1].items():
        torch.testing.assert_close(runs[1][1][name], dense, rtol=1e-4, atol=1e-5)


def test_sparse_switches_on_only_for_large_tables(demo_graph, tmp_path):
    params = load_config(overrides={"model": {"dim": 8}, "train": {"batch_size": 2, "negatives": 2}})
    assert Trainer(demo_graph, params, tmp_path / "a").model.entity.sparse  # 2·(2+2) < N/2
    params = params.updated({"train": {"batch_size": 512}})
    assert not Trainer(demo_graph, params, tmp_path / "b").model.entity.sparse
    params = params.updated({"train": {"optimizer": "adam", "batch_size": 2}})
    assert not Trainer(demo_graph, params, tmp_path / "c").model.entity.sparse  # Adam: dense


def test_training_on_the_cpu_keeps_freed_host_memory(demo_graph, tmp_path, monkeypatch):
    """The trainer asks the allocator to keep freed blocks (no fresh pages for each step's large
    tensors: vlkge.devices); glibc, as on this Linux, takes it."""
    calls = []
    monkeypatch.setattr(training, "keep_freed_host_memory", lambda: calls.append(True) or True)
    params = load_config(overrides={"model": {"dim": 8}, "train": {"device": "cpu"}})
    Trainer(demo_graph, params, tmp_path / "run")
    assert calls == [True]
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert keep_freed_host_memory()


def test_chunk_rows_bounds_memory():
    assert chunk_rows(1000, 1024, memory_mib=1024) == 1024
    rows = chunk_rows(224_166, 1024, memory_mib=1024)
    assert rows * 224_166 * BYTES_PER_SCORE <= 1024 * 2**20 < (rows + 1) * 224_166 * BYTES_PER_SCORE
    assert chunk_rows(10**9, 1024, memory_mib=1) == 1


@pytest.mark.parametrize("backbone", ["transe", "complex"])
def test_evaluation_is_independent_of_chunking(demo_graph, tmp_path, backbone):
    params = load_config(
        overrides={
            "model": {"dim": 16, "backbone": backbone},
            "train": {"epochs": 1, "batch_size": 128, "negatives": 4, "device": "cpu"},
        }
    )
    trainer = Trainer(demo_graph, params, tmp_path / backbone)
    trainer.train_epoch(1, show=False)
    whole = evaluate(trainer.model, demo_graph, "test")
    # one query per chunk (no query sharing), and a budget that forces 3-row chunks
    single = evaluate(trainer.model, demo_graph, "test", batch_size=1)
    budget = 3 * demo_graph.num_entities * BYTES_PER_SCORE / 2**20
    tight = evaluate(trainer.model, demo_graph, "test", memory_mib=budget)
    assert whole["overall"] == single["overall"] == tight["overall"]
    assert whole["per_relation"] == single["per_relation"]


def test_row_adagrad_fused_dense_step_matches_torch_and_keeps_its_kernel_on_load():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(50, 8, generator=gen)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    fused = RowAdagrad([ours], lr=0.1)
    plain = torch.optim.Adagrad([theirs], lr=0.1, foreach=False)
    assert fused.param_groups[0]["fused"] and not plain.param_groups[0]["fused"]
    for _ in range(3):
        grad = torch.randn(50, 8, generator=gen)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        fused.step()
        plain.step()
    torch.testing.assert_close(ours.detach(), theirs.detach())
    assert not torch.equal(ours.detach(), start)
    fused.load_state_dict(plain.state_dict())  # a checkpoint of the unfused kernel
    assert fused.param_groups[0]["fused"]
    torch.testing.assert_close(fused.state[ours]["sum"], plain.state[theirs]["sum"])

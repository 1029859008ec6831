"""VL-KGE representations on a tiny real-image graph encoded with tiny-clip: fusion in batches,
the derived imaginary part, inductive entities, exclusions, and refusal of bad feature stores."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import triples_frame
from tests.vl_data import IMAGES, UNSEEN, encode_tiny, vl_params, write_tiny_vl_graph
from vlkge.errors import InputError
from vlkge.evaluation import evaluate
from vlkge.features import merge_store, read_sidecar, write_shard
from vlkge.features.inputs import load_entity_inputs
from vlkge.metric_tables import compact_metrics, format_metrics
from vlkge.model import build_model
from vlkge.representations import MultimodalRepresentation
from vlkge.training import Trainer

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("vl") / "tiny-vl"
    graph = write_tiny_vl_graph(root)
    store = encode_tiny(graph)
    return graph, store


def _model(graph, **spec):
    params = vl_params(**spec)
    torch.manual_seed(0)
    return build_model(params, graph.num_entities, graph.num_relations, load_entity_inputs(graph, params))


@pytest.mark.parametrize("fusion", ["average", "concat", "weighted"])
@pytest.mark.parametrize("backbone", ["distmult", "complex"])
def test_fused_vector_is_the_same_alone_or_in_a_batch(tiny, fusion, backbone):
    graph, _ = tiny
    reps = _model(graph, fusion=fusion, backbone=backbone).entity
    assert isinstance(reps, MultimodalRepresentation)
    ids = torch.tensor([3, 0, UNSEEN, 10, 3])
    with torch.no_grad():
        batch, table = reps(ids), reps.all()
        for i, e in enumerate(ids.tolist()):
            alone = reps(torch.tensor([e]))[0]
            assert torch.allclose(alone, batch[i], atol=1e-6)
            assert torch.allclose(alone, table[e], atol=1e-6)


@pytest.mark.parametrize("imaginary", ["projection", "gated"])
@pytest.mark.parametrize("backbone", ["complex", "rotate"])
def test_imaginary_part_of_entities_without_structure_has_a_gradient(tiny, imaginary, backbone):
    graph, _ = tiny
    # features-mode rows (model.without_structure: features; neutral ones are zero)
    model = _model(graph, backbone=backbone, imaginary=imaginary, without_structure="features")
    reps = model.entity
    assert not reps.has_structure[UNSEEN] and reps.has_structure[0]
    # the unseen entity's imaginary part does not come from its (untrained) structural row
    before = reps(torch.tensor([UNSEEN])).detach()
    with torch.no_grad():
        reps.structure.weight[UNSEEN] += 5.0
    assert torch.allclose(reps(torch.tensor([UNSEEN])), before)
    score = model.score_hrt(torch.tensor([UNSEEN]), torch.tensor([1]), torch.tensor([20]))
    score.sum().backward()
    grad = reps.to_imaginary.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    if imaginary == "gated":
        assert reps.gate.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("fusion", ["average", "concat"])
def test_fused_complex_rows_take_features_into_both_parts(tiny, fusion, tmp_path):
    """``model.imaginary: fused``: features are projected to whole complex rows, so a seen entity's
    imaginary part moves with its features and an unseen one's row ignores its structural row;
    rows agree alone, in a batch and in the full table, and training steps run."""
    graph, _ = tiny
    model = _model(graph, backbone="complex", imaginary="fused", fusion=fusion)
    reps = model.entity
    d = reps.dim
    assert reps.projections["textual"].out_features == 2 * d and not hasattr(reps, "to_imaginary")
    ids = torch.tensor([3, 0, UNSEEN, 10])
    with torch.no_grad():
        before = reps(ids)
        assert torch.allclose(before, reps.all()[ids], atol=1e-6)
        assert torch.allclose(reps(torch.tensor([UNSEEN]))[0], before[2], atol=1e-6)
        reps.structure.weight[UNSEEN] += 5.0
        assert torch.allclose(reps(ids)[2], before[2])
        reps.feature_table("textual")[0] += 1.0
        after = reps(ids)
    assert not torch.allclose(after[1, d:], before[1, d:])  # seen entity 0's imaginary part
    assert torch.equal(after[0], before[0])
    params = vl_params(backbone="complex", imaginary="fused", fusion=fusion)
    trainer = Trainer(graph, params, tmp_path / "run")
    assert trainer.train_epoch(1, show=False)["loss"] > 0


def test_unseen_entities_are_reported_apart(tiny, tmp_path):
    graph, _ = tiny
    trainer = Trainer(graph, vl_params(), tmp_path / "run")
    trainer.fit(show=False, log=None)
    metrics = evaluate(trainer.model, graph, "test")
    parts = metrics["entities"]
    assert parts["unseen_entities"] == 1
    assert parts["unseen"]["count"] == 4  # two triples with the unseen entity, both directions
    assert parts["seen"]["count"] + parts["unseen"]["count"] == metrics["overall"]["count"]
    assert parts["unseen"]["answer_unseen"]["count"] == 2
    compact = compact_metrics(metrics)  # what `dvc metrics diff` compares carries them too
    assert compact["unseen_entities"] == {k: parts["unseen"][k] for k in compact["overall"]}
    assert compact["seen_entities"]["count"] == parts["seen"]["count"]
    table = format_metrics(metrics).splitlines()  # and the printed table ends with the two rows
    assert table[-2].startswith("seen entities") and table[-1].startswith("unseen entities")
    assert table[-1].split()[-1] == str(parts["unseen"]["count"])
    assert "unseen_entities" not in compact_metrics({**metrics, "entities": {"unseen": {"count": 0}}})
    only_unseen = {"seen": {**parts["seen"], "count": 0}, "unseen": parts["unseen"]}  # all-inductive split
    assert set(compact_metrics({**metrics, "entities": only_unseen})) == {
        "overall",
        "head",
        "tail",
        "unseen_entities",
    }


def test_entity_with_no_modality_and_no_structure_is_a_counted_miss(tiny, caplog):
    graph, _ = tiny
    # structure + visual only: the unseen entity has no image (images: entities 0..7)
    params = vl_params(modalities=["structural", "visual"])
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(graph, params, graph.root.parent / "models" / "excluded")
    assert trainer.excluded == [f"e{UNSEEN}"]
    assert "no modality and no structure" in caplog.text
    # its queries are misses at the worst rank, counted (not dropped); dropping is an opt-in
    metrics = evaluate(trainer.model, graph, "test")
    assert metrics["setup"]["excluded_entities"] == 1
    assert metrics["setup"]["unrepresented_queries"] == 4  # 2 triples, both directions
    assert metrics["entities"]["unseen"]["count"] == 4
    assert metrics["entities"]["unseen"]["mrr"] < 2 / graph.num_entities
    dropped = evaluate(trainer.model, graph, "test", missing="drop")
    assert dropped["setup"]["dropped_queries"] == 4
    assert dropped["overall"]["count"] == metrics["overall"]["count"] - 4


def _copy_store(tiny, tmp_path):
    graph, store = tiny
    root = tmp_path / "copy"
    shutil.copytree(graph.root.parent, root)
    from vlkge.graph import read_graph

    return read_graph(root / "graph"), root / "features" / store.name


def test_manifest_dim_mismatch_is_refused(tiny, tmp_path):
    graph, store = _copy_store(tiny, tmp_path)
    path = store / "text" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["dim"] += 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="dim"):
        load_entity_inputs(graph, vl_params())


def test_nan_feature_rows_are_refused(tiny, tmp_path):
    graph, store = _copy_store(tiny, tmp_path)
    mod_dir = store / "image"
    record = read_sidecar(mod_dir, 0)
    from vlkge.features import load_features

    table = load_features(mod_dir)
    values = table.values.numpy().copy()
    values[2, 5] = np.nan
    sidecar = {k: v for k, v in record.items() if k not in ("rows", "dim", "file", "sha256", "shard")}
    write_shard(mod_dir, 0, table.ids.numpy(), values, id_column="entity_id", sidecar=sidecar)
    merge_store(mod_dir)
    with pytest.raises(InputError, match="NaN or inf"):
        load_entity_inputs(graph, vl_params())


def test_store_of_another_graph_is_refused(tiny, tmp_path):
    _, store = tiny
    other = write_tiny_vl_graph(tmp_path / "other")
    texts = other.entities.with_columns(other.entities["text"].str.replace("group", "team"))
    from vlkge.graph import write_graph

    changed = write_graph(
        tmp_path / "changed" / "graph",
        texts,
        other.relations,
        _triples_frame(other),
        {"dataset": "changed"},
    )
    shutil.copytree(store, tmp_path / "changed" / "features" / store.name)
    with pytest.raises(InputError, match=r"another (version of the )?graph"):
        load_entity_inputs(changed, vl_params())
    # fewer entities than the store's ids
    small = write_graph(
        tmp_path / "small" / "graph",
        other.entities.head(20),
        other.relations,
        _triples_frame(other, below=20),
        {"dataset": "small"},
    )
    shutil.copytree(store, tmp_path / "small" / "features" / store.name)
    with pytest.raises(InputError, match=r"another (version of the )?graph|the graph has 20"):
        load_entity_inputs(small, vl_params())


def _triples_frame(graph, below: int | None = None):
    """``graph``'s triples per split, keeping only those between entities ``< below``."""
    return triples_frame(
        {
            split: [(h, r, t) for h, r, t in arr.tolist() if below is None or (h < below and t < below)]
            for split, arr in graph.triples.items()
        }
    )


def test_dropped_structure_gives_the_features_only_representation(tiny, tmp_path):
    graph, _ = tiny
    model = _model(graph, backbone="complex")
    reps = model.entity
    drop = torch.zeros(graph.num_entities, dtype=torch.bool)
    drop[3] = True
    with torch.no_grad():
        table = reps.all(drop_structure=drop)
        alone = reps.new_entity({m: reps.feature_table(m)[3:4] for m in reps.feature_modalities})
        assert torch.allclose(table[3], alone[0], atol=1e-6)
        assert torch.allclose(table[4], reps.all()[4])
    params = vl_params(backbone="complex").updated({"train": {"structure_dropout": 0.5}})
    trainer = Trainer(graph, params, tmp_path / "dropout")
    trainer.fit(show=False, log=None)
    assert trainer.state.epoch == 3


@pytest.mark.parametrize("backbone", ["distmult", "complex"])
def test_rows_of_a_batch_equal_the_full_table(tiny, backbone):
    graph, _ = tiny
    reps = _model(graph, backbone=backbone).entity
    ids = torch.tensor([0, 3, 7, 9, UNSEEN, 23])  # with and without image, structure
    drop = torch.zeros(graph.num_entities, dtype=torch.bool)
    drop[[3, 9]] = True
    with torch.no_grad():
        assert torch.allclose(reps.rows(ids), reps.all()[ids], atol=1e-6)
        assert torch.allclose(
            reps.rows(ids, drop_structure=drop[ids]), reps.all(drop_structure=drop)[ids], atol=1e-6
        )
        assert not torch.allclose(reps.rows(ids, drop_structure=drop[ids])[1], reps.all()[3])
        feats = {
            m: (torch.tensor([7]), torch.randn(1, reps.feature_table(m).shape[1]))
            for m in reps.feature_modalities
        }
        assert torch.allclose(reps.rows(ids, fresh=feats), reps.all(fresh=feats)[ids], atol=1e-6)


def test_inductive_training_never_touches_held_out_entities(tiny, tmp_path):
    graph, _ = tiny  # UNSEEN occurs only in valid/test
    params = vl_params(backbone="complex")
    trainer = Trainer(graph, params, tmp_path / "run")
    assert UNSEEN not in trainer.negative_candidates.tolist()
    touched = set()
    for _ in range(50):
        negatives, _, _ = trainer.sampler.sample(trainer.train)
        touched |= set(negatives[..., [0, 2]].unique().tolist())
    assert UNSEEN not in touched and len(touched) == len(trainer.negative_candidates)

    # no gradient reaches anything from the held-out entity's features: changing them changes nothing
    def trained(shift: float):
        t = Trainer(graph, params, tmp_path / f"run{shift}")
        for m in t.model.entity.feature_modalities:
            t.model.entity.feature_table(m)[UNSEEN] += shift
        t.fit(show=False, log=None)
        return torch.cat([p.detach().flatten() for p in t.model.parameters()])

    assert torch.equal(trained(0.0), trained(3.0))


def test_unit_tables_follow_the_features_and_scarce_modalities_score_alike(tiny):
    graph, _ = tiny
    reps = _model(graph).entity
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(0, graph.num_entities, (6, 9), generator=gen)
    side = torch.randint(0, 2, (6, 9), generator=gen)
    for m in reps.feature_modalities:
        have = reps.mask[:, reps.modalities.index(m)]
        unit = reps.unit_table(m)
        norms = unit.norm(dim=1)
        assert torch.allclose(norms[have], torch.ones(int(have.sum())), atol=1e-5)
        assert torch.equal(norms[~have], torch.zeros(int((~have).sum())))
        queries = torch.randn(6, 2, unit.shape[1], generator=gen, requires_grad=True)
        results = []
        for scarce in (False, True):  # sampled kernel over every pair / only the pairs that have m
            reps.scarce[m] = scarce
            out = reps.unit_dot_sampled(m, queries, index, side)
            results.append((out, torch.autograd.grad(out.square().sum(), queries)[0]))
        torch.testing.assert_close(results[0][0], results[1][0])
        torch.testing.assert_close(results[0][1], results[1][1])
        assert bool((results[0][0][~have[index]] == 0).all())
        # a write into the features (fine-tuning) is seen by the next read, not the cached table
        entity = int(have.nonzero()[0])
        reps.feature_table(m)[entity] = 2.0 * torch.ones(unit.shape[1])
        expected = torch.full((unit.shape[1],), unit.shape[1] ** -0.5)
        torch.testing.assert_close(reps.unit_table(m)[entity], expected)

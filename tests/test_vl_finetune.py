"""Fine-tuning (no --frozen): tiny-clip is trained with the KGE layers, and the run keeps the tuned
encoder and features so that evaluation and prediction elsewhere see the same model."""

from __future__ import annotations

import pytest
import torch

from tests.vl_data import IMAGES, encode_tiny, image_files, tiny_clip, vl_params, write_tiny_vl_graph
from vlkge.evaluation import evaluate
from vlkge.features import load_features
from vlkge.predict import encode_query, predict
from vlkge.runs import apply_tuned_encoder, load_model, load_run
from vlkge.training import Trainer

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason="shared images not found")


def test_finetuning_moves_the_encoder_and_is_reproduced_from_the_run(tmp_path):
    graph = write_tiny_vl_graph(tmp_path / "tiny-vl", inductive=False)
    store = encode_tiny(graph)
    params = vl_params(modalities=["visual", "textual"])
    params = params.updated(
        {
            "train": {
                "frozen": False,
                "finetune_lr": 1e-3,
                "finetune_layers": 1,
                "epochs": 2,
                "eval_every": 100,
            }
        }
    )
    run_dir = tmp_path / "tiny-vl" / "models" / "tuned"
    trainer = Trainer(graph, params, run_dir)
    before = {k: v.clone() for k, v in trainer.tuner.state_dict().items()}
    assert any(".resblocks.1." in k for k in before) and not any(".resblocks.0." in k for k in before)
    trainer.fit(show=False, log=None)
    after = trainer.tuner.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    stored = load_features(store / "text")
    tuned = trainer.model.entity.feature_table("textual")
    assert not torch.allclose(tuned[stored.ids], stored.values)

    reloaded = load_model(run_dir, graph)
    assert evaluate(reloaded, graph, "test")["overall"] == evaluate(trainer.model, graph, "test")["overall"]

    run = load_run(run_dir, device="cpu")
    model, graph = run.model, run.graph
    encoder = tiny_clip()
    snapshot = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    try:
        assert apply_tuned_encoder(encoder, run_dir)
        query = encode_query(encoder, image_files(8)[2], graph.entities["text"][2], run.features)
        result = predict(model, graph, query, "next", k=3)
        assert result.nearest[0]["key"] == "e2"
        assert result.nearest[0]["score"] == pytest.approx(1.0, abs=1e-4)
    finally:
        encoder.model.load_state_dict(snapshot)

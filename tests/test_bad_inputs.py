"""The bad-input catalogue (tests/bad_inputs/catalogue.yaml) through the real command line.

Every case runs ``vlkge.cli.main`` (the console entry point: argument parsing, the error → one
line → exit 2 wrapper) in this process, so a case costs milliseconds instead of a Python start;
an exception escaping ``main`` fails the test (it would be a traceback for the user). Two cases
also run in a fresh process, with and without ``--debug``.

Expectations: ``error`` (exit 2, exactly one ``error:`` line naming the file/line/key, what is
wrong and what to do, no traceback), ``skipped`` (the run succeeds; the input is left out,
counted and listed with its reason) or ``accepted`` (the run succeeds and uses the input).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.test_encode_common import needs_data, real_images, tiny_encoder
from vlkge.features import read_sidecar, write_shard

HERE = Path(__file__).resolve().parent
BAD = HERE / "bad_inputs"
FILES = BAD / "files"
CATALOGUE: list[dict] = yaml.safe_load((BAD / "catalogue.yaml").read_text(encoding="utf-8"))
DATASET = "custom:cat"
PARAMS = {
    "dataset": DATASET,
    "encode": {"model": "tiny-clip", "device": "cpu", "workers": 0, "batch_size": 4, "shard_rows": 4},
    "model": {"dim": 8},
    "train": {"epochs": 1, "negatives": 2, "batch_size": 8, "device": "cpu", "eval_every": 1},
}
# entity → its image file in the good input (tests/bad_inputs/good/entities.csv)
IMAGE_OF = {
    "image-truncated": "c",
    "image-zero-bytes": "d",
    "image-wrong-extension-text": "e",
    "image-wrong-extension-png": "f",
    "image-cmyk": "g",
    "image-16-bit": "h",
    "image-huge-dimensions": "i",
    "image-is-a-directory": "j",
}


def cases(group: str) -> list:
    return [pytest.param(c, id=c["id"]) for c in CATALOGUE if c["group"] == group]


# ----------------------------------------------------------------------------- running the CLI


def vlkge(capsys, cwd: Path, *args: str) -> tuple[int, str]:
    """Run the console entry point in ``cwd``; return (exit status, stderr). ``capsys`` None:
    stderr is captured with a redirect (for module-scoped fixtures)."""
    from vlkge.cli import main

    old_cwd, old_argv = Path.cwd(), sys.argv
    os.chdir(cwd)
    sys.argv = ["vlkge", *args]
    buffer = io.StringIO()
    if capsys is not None:
        capsys.readouterr()
    try:
        with contextlib.redirect_stderr(buffer) if capsys is None else contextlib.nullcontext():
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv
    if capsys is None:
        return code, buffer.getvalue()
    captured = capsys.readouterr()
    STDOUT[:] = [captured.out]
    return code, captured.err


STDOUT: list[str] = [""]  # stdout of the last captured vlkge() call (results, as opposed to messages)


def assert_one_clear_error(code: int, err: str, case: dict) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, f"{case['id']}: exit {code}, stderr:\n{err}"
    assert "Traceback" not in err
    assert len(errors) == 1, f"{case['id']}: {len(errors)} error lines:\n{err}"
    line = errors[0]
    for needle in case.get("message", []):
        assert needle in line, f"{case['id']}: {needle!r} not in {line!r}"
    assert " — " in line, f"{case['id']}: no hint of what to do in {line!r}"
    if os.environ.get("VLKGE_CATALOGUE_MESSAGES"):  # collect the lines for the README/report
        with open(os.environ["VLKGE_CATALOGUE_MESSAGES"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"id": case["id"], "line": line}) + "\n")
    return line


# ----------------------------------------------------------------------------- inputs


def write_images(images: Path) -> None:
    """The good input's images: two real photos and one broken or odd file per catalogue case."""
    from PIL import Image

    images.mkdir(parents=True, exist_ok=True)
    photos = real_images(2)
    shutil.copy(photos[0], images / "a.jpg")
    shutil.copy(photos[1], images / "b.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(images / "full.jpg", quality=90)
    data = (images / "full.jpg").read_bytes()
    (images / "c.jpg").write_bytes(data[: len(data) // 3])
    (images / "full.jpg").unlink()
    shutil.copy(FILES / "image_zero_bytes.jpg", images / "d.jpg")
    shutil.copy(FILES / "image_text_file.jpg", images / "e.jpg")
    Image.fromarray(noise).save(images / "f.jpg", format="PNG")
    Image.new("CMYK", (64, 48), (10, 200, 30, 0)).save(images / "g.jpg")
    Image.fromarray(sixteen_bit()).save(images / "h.png")
    shutil.copy(FILES / "image_huge_dimensions.png", images / "i.png")
    (images / "j.jpg").mkdir()


def sixteen_bit() -> np.ndarray:
    """A 16-bit grey ramp [64, 64] whose values mostly exceed 255."""
    return (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)


def good_source(root: Path, *, layout: str = "csv", images: bool = False) -> Path:
    """The good user graph (tests/bad_inputs/good) in ``root``: triples.csv or split files."""
    root.mkdir(parents=True)
    shutil.copy(BAD / "good" / "entities.csv", root / "entities.csv")
    if layout == "csv":
        shutil.copy(BAD / "good" / "triples.csv", root / "triples.csv")
    else:
        rows = [line.split(",") for line in (BAD / "good" / "triples.csv").read_text().splitlines()[1:]]
        for name, label in (("train.txt", "train"), ("valid.txt", "val"), ("test.txt", "test")):
            lines = ["\t".join(r[:3]) for r in rows if r[3] == label]
            (root / name).write_text("\n".join(lines) + "\n")
    if images:
        write_images(root / "images")
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project: params.yaml, the good graph with every catalogue image crawled, cleaned,
    encoded with tiny-clip (features/tiny-clip) and trained for one epoch on structure only
    (models/r), on structure, images and text (models/mm), on structure and text (models/mt)."""
    if not real_images(2):
        pytest.skip("real images not present")
    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    source = good_source(root / "source", images=True)
    capsys = None
    for args in (
        ("crawl", DATASET, "--source", str(source)),
        ("clean", DATASET),
        ("encode", DATASET, "--no-progress"),
        ("train", DATASET, "--out", "r", "--quiet"),
        ("train", DATASET, "--out", "mm", "--quiet", "--modalities", "structural,visual,textual"),
        ("train", DATASET, "--out", "mt", "--quiet", "--modalities", "structural,textual"),
    ):
        code, err = vlkge(capsys, root, *args)
        assert code == 0, f"{args}: {err}"
        if args[0] == "encode":
            (root / "encode.log").write_text(err)
    return root


def copy_project(project: Path, tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(project, target, symlinks=True)
    return target


def data(project: Path) -> Path:
    return project / "data" / "custom-cat"


# ----------------------------------------------------------------------------- graph inputs


def test_catalogue_is_complete_and_listed_in_the_readme():
    ids = [c["id"] for c in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    for case in CATALOGUE:
        if "input" in case:
            assert (FILES / case["input"]).is_file(), case["id"]
        assert case.get("expect", "error") in ("error", "skipped", "accepted")
    readme = (HERE.parent / "README.md").read_text(encoding="utf-8")
    missing = [i for i in ids if f"`{i}`" not in readme]
    assert not missing, f"README.md does not list {missing}"


@pytest.mark.parametrize("case", cases("graph"))
def test_broken_graph_input(case, tmp_path, capsys):
    source = good_source(tmp_path / "src", layout=case.get("layout", "csv"))
    if "input" in case:
        shutil.copy(FILES / case["input"], source / case["target"])
    GRAPH_SETUPS.get(case["id"], lambda s: s)(source)
    where = source / "triples.csv" if case["id"] == "source-is-a-file" else source
    work = tmp_path / "work"
    work.mkdir()
    if "params" in case:
        (work / "params.yaml").write_text(case["params"])
    code, err = vlkge(capsys, work, "crawl", "custom:g", "--source", str(where))
    if code == 0:
        code, err = vlkge(capsys, work, "clean", "custom:g")
    assert_one_clear_error(code, err, case)
    assert not (work / "data" / "custom-g" / "graph").exists()  # nothing half-built


def _directory_for_triples(source: Path) -> None:
    (source / "triples.csv").unlink()
    (source / "triples.csv").mkdir()


GRAPH_SETUPS: dict[str, Callable[[Path], None]] = {
    "triples-is-a-directory": _directory_for_triples,
    "tsv-no-train-file": lambda source: (source / "train.txt").unlink(),
}


# ----------------------------------------------------------------------------- images


@needs_data
@pytest.mark.parametrize("case", cases("image"))
def test_broken_image(case, project):
    from vlkge.features import load_features
    from vlkge.graph import read_graph

    graph = read_graph(data(project) / "graph")
    key = IMAGE_OF[case["id"]]
    entity = graph.entity_keys.index(key)
    store = load_features(data(project) / "features" / "tiny-clip" / "image", verify=True, graph=graph)
    report = json.loads((data(project) / "features" / "tiny-clip" / "image" / "report.json").read_text())
    reasons = {f["key"]: f["reason"] for f in report["failures"]}
    log = (project / "encode.log").read_text()
    assert "image: 9 rows planned" in log and "4 failed, 4 rows dropped" in log  # counted
    if case["expect"] == "accepted":
        assert entity in store.ids.tolist() and key not in reasons
    elif case["id"] == "image-is-a-directory":  # dropped by clean, with a warning naming it
        assert graph.entities["images"][entity].to_list() == []
        warning = next(w for w in graph.meta["clean"]["warnings"] if "not found" in w)
        for needle in case["message"]:
            assert needle in warning
    else:  # skipped, listed with its reason, never stored (no zero vector)
        assert entity not in store.ids.tolist()
        for needle in case["message"]:
            assert needle in reasons[key], reasons[key]
        assert key in {d["key"] for d in report["dropped"]}


@needs_data
def test_sixteen_bit_image_is_scaled_not_clipped(project):
    """The stored vector of the 16-bit PNG is that of its 8-bit version (values / 257), not of
    PIL's plain RGB conversion, which clips everything above 255 to white."""
    from PIL import Image

    from vlkge.features import load_features

    store = load_features(data(project) / "features" / "tiny-clip" / "image")
    entity = 7  # h: the 8th row of good/entities.csv
    stored = store.values[store.ids.tolist().index(entity)]
    encoder = tiny_encoder()
    ramp = sixteen_bit()
    scaled = Image.fromarray((ramp / 65535 * 255).round().astype(np.uint8)).convert("RGB")
    clipped = Image.fromarray(ramp).convert("RGB")
    vectors = encoder.encode_images(
        torch.stack([encoder.image_transform(scaled), encoder.image_transform(clipped)])
    )
    vectors = torch.nn.functional.normalize(vectors.float(), dim=1)
    assert torch.allclose(stored, vectors[0], atol=1e-4)
    assert not torch.allclose(stored, vectors[1], atol=1e-2)


# ----------------------------------------------------------------------------- feature stores


def _text_store(project: Path) -> Path:
    return data(project) / "features" / "tiny-clip" / "text"


def _rewrite_shard(mod: Path, index: int, change: Callable[[np.ndarray, np.ndarray], tuple]) -> None:
    """Rewrite shard ``index`` with ``change(ids, vectors)`` and make the sidecar and manifest
    hashes match the new file, so only the planted defect remains."""
    from vlkge.features import load_features

    table = load_features(mod)
    manifest = table.manifest
    rows = manifest["shards"][index]["rows"]
    start = sum(s["rows"] for s in manifest["shards"][:index])
    ids = table.ids.numpy()[start : start + rows].copy()
    vectors = table.values.numpy()[start : start + rows].copy()
    ids, vectors = change(ids, vectors)
    record = write_shard(mod, index, ids, vectors, id_column="entity_id", sidecar=read_sidecar(mod, index))
    manifest["shards"][index].update(rows=record["rows"], sha256=record["sha256"])
    (mod / "manifest.json").write_text(json.dumps(manifest))


def _nan_rows(ids, vectors):
    vectors[:2] = np.nan
    return ids, vectors


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        path = _text_store(project) / "manifest.json"
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return setup


def _mixed(project: Path) -> None:
    """A text shard of another encoder configuration (not normalised) dropped into the store."""
    from vlkge.encoding import EncodeOptions, encode_graph
    from vlkge.graph import read_graph

    other = project / "other"
    options = EncodeOptions(batch_size=4, shard_rows=4, workers=0, normalize=False, progress=False)
    encode_graph(read_graph(data(project) / "graph"), tiny_encoder(), other, options, log=lambda m: None)
    for name in ("part-00001.parquet", "part-00001.json"):
        shutil.copy(other / "text" / name, _text_store(project) / name)


def _stale(project: Path) -> None:
    """A new entity k (with text) added to the user graph, crawled and cleaned again."""
    source = project / "source"
    with open(source / "triples.csv", "a") as handle:
        handle.write("k,r1,a,train\n")
    with open(source / "entities.csv", "a") as handle:
        handle.write("k,lambda: a new entity,\n")
    (project / "encode.log").unlink()
    for args in (("crawl", DATASET, "--source", str(source)), ("clean", DATASET)):
        code, err = vlkge(None, project, *args)
        assert code == 0, err


FEATURE_SETUPS: dict[str, Callable[[Path], None]] = {
    "features-wrong-dim": lambda p: _rewrite_shard(_text_store(p), 0, lambda i, v: (i, v[:, :16])),
    "features-nan-rows": lambda p: _rewrite_shard(_text_store(p), 0, _nan_rows),
    "features-ids-out-of-range": lambda p: _rewrite_shard(
        _text_store(p), 0, lambda i, v: (np.where(i == i.max(), 999, i), v)
    ),
    "features-negative-ids": lambda p: _rewrite_shard(
        _text_store(p), 0, lambda i, v: (np.where(i == i.min(), -1, i), v)
    ),
    "features-two-encoders-mixed": _mixed,
    "features-manifest-lies-rows": _edit_manifest(
        lambda m: m["shards"][1].update(rows=m["shards"][1]["rows"] + 1)
    ),
    "features-manifest-lies-sha256": _edit_manifest(lambda m: m["shards"][1].update(sha256="0" * 64)),
    "features-manifest-lists-missing-shard": _edit_manifest(
        lambda m: m["shards"].append({"name": "part-00007.parquet", "rows": 1, "sha256": "0" * 64})
    ),
    "features-manifest-not-json": lambda p: (_text_store(p) / "manifest.json").write_text('{"rows": 10, "di'),
    "features-no-manifest": lambda p: (_text_store(p) / "manifest.json").unlink(),
    "features-stale-graph": _stale,
}


@needs_data
@pytest.mark.parametrize("case", cases("features"))
def test_broken_feature_store(case, project, tmp_path, capsys):
    work = copy_project(project, tmp_path)
    code, err = vlkge(capsys, work, "encode", DATASET, "--check")
    assert code == 0, err  # the intact copy passes the same check
    FEATURE_SETUPS[case["id"]](work)
    flag = "--merge" if case.get("command") == "merge" else "--check"
    code, err = vlkge(capsys, work, "encode", DATASET, flag)
    assert_one_clear_error(code, err, case)


# ----------------------------------------------------------------------------- params


@needs_data
@pytest.mark.parametrize("case", cases("params"))
def test_broken_params(case, project, capsys):
    params = str(FILES / case["input"]) if "input" in case else "no-such-params.yaml"
    if case.get("command") == "encode":
        args = ("encode", DATASET, "--no-progress")
    else:
        args = ("train", DATASET, "--out", "never", "--quiet")
    code, err = vlkge(capsys, project, "--params", params, *args)
    assert_one_clear_error(code, err, case)
    assert not (data(project) / "models" / "never" / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------- run files


def _truncate(path: Path) -> None:
    data_ = path.read_bytes()
    path.write_bytes(data_[: len(data_) // 2])


RUN_SETUPS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "run-checkpoint-truncated": (
        lambda p: _truncate(data(p) / "models" / "r" / "checkpoint.pt"),
        ("train", DATASET, "--out", "r", "--resume", "--epochs", "2", "--quiet"),
    ),
    "run-model-not-torch": (
        lambda p: (data(p) / "models" / "r" / "model.pt").write_text("not a model\n"),
        ("evaluate", "r", "--dataset", DATASET),
    ),
    "run-config-not-json": (
        lambda p: _truncate(data(p) / "models" / "r" / "config.json"),
        ("evaluate", "r", "--dataset", DATASET),
    ),
    "run-not-a-run": (lambda p: None, ("evaluate", "data/custom-cat/graph")),
    "graph-parquet-truncated": (
        lambda p: _truncate(data(p) / "graph" / "entities.parquet"),
        ("train", DATASET, "--out", "r2", "--quiet"),
    ),
    "graph-meta-not-json": (
        lambda p: _truncate(data(p) / "graph" / "meta.json"),
        ("train", DATASET, "--out", "r2", "--quiet"),
    ),
}


@needs_data
@pytest.mark.parametrize("case", cases("run"))
def test_broken_run_files(case, project, tmp_path, capsys):
    work = copy_project(project, tmp_path)
    setup, args = RUN_SETUPS[case["id"]]
    setup(work)
    code, err = vlkge(capsys, work, *args)
    assert_one_clear_error(code, err, case)


# ----------------------------------------------------------------------------- predict queries


@needs_data
@pytest.mark.parametrize("case", cases("predict"))
def test_broken_predict_query(case, project, capsys):
    args = [a.replace("{project}", str(project)) for a in case["args"]]
    code, err = vlkge(capsys, project, "predict", case.get("run", "mm"), "--dataset", DATASET, *args)
    if case.get("expect") == "accepted":
        assert code == 0, err
        assert "top 10 tails" in STDOUT[0], STDOUT[0]  # clamped to the 10 candidates
        return
    assert_one_clear_error(code, err, case)


# ----------------------------------------------------------------------------- fresh processes


@pytest.mark.parametrize("debug", [False, True])
def test_fresh_process_one_line_and_debug_traceback(tmp_path, debug):
    """The console script in a new process: one line without ``--debug``, a traceback with it."""
    cli = [sys.executable, "-c", "from vlkge.cli import main; main()"]
    flags = ["--debug"] if debug else []
    params = str(FILES / "params_unknown_key.yaml")
    command = [*cli, *flags, "--params", params, "summary"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if debug:
        assert result.returncode != 0 and "Traceback" in result.stderr and "ConfigError" in result.stderr
    else:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(errors) == 1 and "[model.dimension]" in errors[0]

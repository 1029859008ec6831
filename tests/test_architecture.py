"""The package's shape, read from its source with ``ast`` alone: no import cycles, lower layers
never import higher ones (GUIDE §3, README "Layers"), no function over 80 lines.

Every ``import`` counts, at module level or inside a function (a deferred import is still a
dependency). The dataset adapters in ``pipeline/`` are installed as ``vlkge.pipeline`` and are
read the same way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder → the package it is installed as
FOLDERS = {ROOT / "vlkge": "vlkge", ROOT / "pipeline": "vlkge.pipeline"}
MAX_FUNCTION_LINES = 80

#: top to bottom; a module may import from its own layer and the layers below it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("vlkge.cli", "vlkge.__main__")),
    ("api", ("vlkge.api",)),
    (
        "jobs",
        (
            "vlkge.training",
            "vlkge.distributed",
            "vlkge.finetune",
            "vlkge.predict",
            "vlkge.zeroshot",
            "vlkge.neighbours",
            "vlkge.encoding",
            "vlkge.encode_batches",
            "vlkge.reports",
            "vlkge.holdout",
        ),
    ),
    ("runs", ("vlkge.runs",)),
    (
        "ranking",
        ("vlkge.evaluation", "vlkge.metric_tables", "vlkge.ranking", "vlkge.sampling", "vlkge.optim"),
    ),
    (
        "nn",
        (
            "vlkge.model",
            "vlkge.representations",
            "vlkge.prior",
            "vlkge.votes",
            "vlkge.calibration",
            "vlkge.fusion",
            "vlkge.interactions",
            "vlkge.gathered",
            "vlkge.encoders",
        ),
    ),
    ("datasets", ("vlkge.pipeline",)),
    ("data", ("vlkge.features", "vlkge.config", "vlkge.graph")),
    (
        "foundation",
        (
            "vlkge.errors",
            "vlkge.fileio",
            "vlkge.paths",
            "vlkge.registry",
            "vlkge.components",
            "vlkge.modalities",
            "vlkge.devices",
            "vlkge.provenance",
            "vlkge.positions",
            "vlkge.csr",
        ),
    ),
]
#: the dataset adapters import the graph and the foundation only (GUIDE §3)
DATASETS_MAY_IMPORT = ("vlkge.pipeline", "vlkge.graph", *dict(LAYERS)["foundation"])


def modules() -> dict[str, Path]:
    """Dotted module name → source file, for the package and the adapters."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (``from a import b`` counts as ``a.b`` when
    that is a module, else as ``a``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def is_adapter(name: str) -> bool:
    return name == "vlkge.pipeline" or name.startswith("vlkge.pipeline.")


def layer_of(name: str) -> int:
    """Position of a module's layer in :data:`LAYERS` (0 is the top)."""
    for position, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return position
    return len(LAYERS) if name == "vlkge" else -1


def long_functions(names: list[str]) -> Iterator[str]:
    found = modules()
    for name in names:
        tree = ast.parse(found[name].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{name}.{node.name}: {length} lines"


# ----------------------------------------------------------------------------- the checks


def test_the_cycle_finder_finds_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycles_in_the_package() -> None:
    edges = {k: {t for t in v if not is_adapter(t)} for k, v in graph().items() if not is_adapter(k)}
    assert cycles(edges) == []


def test_no_import_cycles_with_the_dataset_adapters() -> None:
    assert cycles(graph()) == []


def test_every_module_has_a_layer() -> None:
    assert [name for name in modules() if layer_of(name) < 0] == []


def test_lower_layers_never_import_higher_ones() -> None:
    upward = [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for name, targets in graph().items()
        if name != "vlkge"
        for target in sorted(targets)
        if layer_of(target) < layer_of(name)
    ]
    assert upward == []


def test_the_dataset_adapters_import_the_graph_and_the_foundation_only() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        if is_adapter(name)
        for target in sorted(targets)
        if not any(target == p or target.startswith(p + ".") for p in DATASETS_MAY_IMPORT)
    ]
    assert wrong == []


def test_no_function_in_the_package_is_longer_than_80_lines() -> None:
    assert list(long_functions([n for n in modules() if not is_adapter(n)])) == []


def test_no_function_in_the_dataset_adapters_is_longer_than_80_lines() -> None:
    assert list(long_functions([n for n in modules() if is_adapter(n)])) == []

"""The installed layout: every package folder is listed in pyproject.toml, under vlkge only."""

from __future__ import annotations

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _listed() -> tuple[list[str], dict[str, str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    return config["packages"], config["package-dir"]


def test_every_package_folder_is_listed_under_vlkge() -> None:
    packages, folders = _listed()
    assert all(name == "vlkge" or name.startswith("vlkge.") for name in packages)
    found = set()
    for name, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    # a folder mapped to a subpackage is also found below its parent's folder only when nested
    assert found == set(packages), f"pyproject.toml [tool.setuptools] packages: {sorted(found)}"


def test_adapters_import_as_vlkge_pipeline() -> None:
    import vlkge.pipeline

    assert Path(vlkge.pipeline.__file__).resolve().parent == ROOT / "pipeline"

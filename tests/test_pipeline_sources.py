"""Source resolution (dir, env mirror, file:// and localhost URLs, pinned hashes) and raw copies."""

from __future__ import annotations

import hashlib
import http.server
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from vlkge.pipeline import sources
from vlkge.pipeline.dumps import Dump, Pin
from vlkge.pipeline.sources import copy_verified, crawl_files, crawl_source, read_manifest, resolve_source

from vlkge.errors import InputError, SourceError

PAYLOAD = b"head,relation,tail,mode\r\na,r,b,train\r\n"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def pinned(url: str, sha256: str) -> Dump:
    """A one-file public dump ``ds``: ``triples.csv`` from ``url``."""
    return Dump("ds", (Pin("triples.csv", url, sha256),))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLKGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VLKGE_DATA_MIRROR", raising=False)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A tiny HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (base URL, requests)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "triples.csv").write_bytes(PAYLOAD)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_local_dir_is_used_as_is(tmp_path: Path) -> None:
    src = tmp_path / "dump"
    src.mkdir()
    assert resolve_source("custom:x", str(src), None) == src


def test_crawl_source_takes_the_option_before_the_params(tmp_path: Path) -> None:
    given, configured = tmp_path / "given", tmp_path / "configured"
    given.mkdir()
    configured.mkdir()
    params = {"crawl": {"source": str(configured)}}
    assert crawl_source("custom:x", str(given), params, None) == given
    assert crawl_source("custom:x", None, params, None) == configured
    with pytest.raises(SourceError, match="no public URL"):
        crawl_source("custom:x", None, {"crawl": None}, None)


def test_missing_local_source_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceError, match="source not found") as err:
        resolve_source("custom:x", str(missing), None)
    assert str(missing) in str(err.value)


def test_env_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "my_set").mkdir(parents=True)
    monkeypatch.setenv("VLKGE_DATA_MIRROR", str(mirror))
    # dataset "my-set" finds the directory spelled with an underscore
    assert resolve_source("my-set", None, None) == mirror / "my_set"
    # an explicit source still wins over the mirror
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_source("my-set", str(other), None) == other
    # no public dump: the error names what was tried
    with pytest.raises(SourceError, match="VLKGE_DATA_MIRROR") as err:
        resolve_source("absent", None, None)
    assert str(mirror / "absent") in str(err.value)
    # a public dump: on to the cache and its URLs (here unreachable: the error names the file)
    with pytest.raises(SourceError, match="could not be fetched") as err:
        resolve_source("absent", None, pinned("http://127.0.0.1:1/x.csv", PAYLOAD_SHA))
    assert "triples.csv from http://127.0.0.1:1/x.csv" in str(err.value)


def test_no_source_no_mirror_no_url() -> None:
    with pytest.raises(SourceError, match="no public URL"):
        resolve_source("custom:x", None, None)


def test_file_url_with_pinned_hash(tmp_path: Path) -> None:
    src = tmp_path / "triples.csv"
    src.write_bytes(PAYLOAD)
    url = src.as_uri()
    path = resolve_source("ds", url, pinned("https://example.org/triples.csv", PAYLOAD_SHA))
    assert path.read_bytes() == PAYLOAD
    assert path.is_relative_to(tmp_path / "cache")
    assert not list(path.parent.glob(".*tmp"))


def test_file_url_wrong_hash_is_refused_and_not_kept(tmp_path: Path) -> None:
    src = tmp_path / "triples.csv"
    src.write_bytes(PAYLOAD)
    bad = "0" * 64
    with pytest.raises(SourceError) as err:
        resolve_source("ds", src.as_uri(), pinned("https://example.org/triples.csv", bad))
    message = str(err.value)
    assert "triples.csv" in message and bad in message and PAYLOAD_SHA in message
    assert "retry" in message  # says what to do
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_unpinned_url_of_another_file_is_not_checked(tmp_path: Path) -> None:
    src = tmp_path / "mine.csv"
    src.write_bytes(PAYLOAD)
    dump = pinned("https://example.org/triples.csv", "0" * 64)
    assert resolve_source("ds", src.as_uri(), dump).read_bytes() == PAYLOAD


def test_public_url_over_http_and_cache(served: tuple[str, list[str]]) -> None:
    base, requests = served
    dump = pinned(f"{base}/triples.csv", PAYLOAD_SHA)
    first = resolve_source("ds", None, dump)
    assert (first / "triples.csv").read_bytes() == PAYLOAD
    again = resolve_source("ds", None, dump)
    assert again == first
    assert requests == ["/triples.csv"]  # the verified cached copy is reused


def test_public_url_wrong_hash(served: tuple[str, list[str]]) -> None:
    base, _ = served
    with pytest.raises(SourceError, match="sha256 mismatch") as err:
        resolve_source("ds", None, pinned(f"{base}/triples.csv", "f" * 64))
    assert PAYLOAD_SHA in str(err.value) and "f" * 64 in str(err.value)


def test_http_error_is_a_source_error(served: tuple[str, list[str]]) -> None:
    base, _ = served
    with pytest.raises(SourceError, match="cannot download"):
        resolve_source("ds", f"{base}/missing.csv", None)


def test_archive_url_is_unpacked(tmp_path: Path) -> None:
    folder = tmp_path / "pack" / "mygraph"
    folder.mkdir(parents=True)
    (folder / "triples.csv").write_bytes(PAYLOAD)
    archive = tmp_path / "mygraph.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="mygraph")
    out = resolve_source("ds", archive.as_uri(), None)
    assert out.is_dir() and out.name == "mygraph"
    assert (out / "triples.csv").read_bytes() == PAYLOAD


def test_copy_verified(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_bytes(PAYLOAD)
    entry = copy_verified(src, tmp_path / "raw" / "sub" / "a.csv")
    dst = tmp_path / "raw" / "sub" / "a.csv"
    assert entry["sha256"] == PAYLOAD_SHA and entry["bytes"] == len(PAYLOAD)
    assert entry["path"] == str(dst) and dst.read_bytes() == PAYLOAD
    with pytest.raises(SourceError, match="missing"):
        copy_verified(tmp_path / "gone.csv", tmp_path / "raw" / "gone.csv")


def test_recrawl_is_idempotent_and_skips_hashing(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "t.csv").write_bytes(PAYLOAD)
    (src / "img.jpg").write_bytes(b"\xff\xd8jpeg")
    raw = tmp_path / "raw"
    files = [(src / "t.csv", "t.csv", "table"), (src / "img.jpg", "images/img.jpg", "image")]
    first = crawl_files(raw, files, dataset="ds", source=src)
    manifest_bytes = (raw / "manifest.json").read_bytes()
    inode = (raw / "t.csv").stat().st_ino

    calls: list[Path] = []
    real = sources.sha256_file
    monkeypatch.setattr(sources, "sha256_file", lambda p: calls.append(Path(p)) or real(p))
    second = crawl_files(raw, files, dataset="ds", source=src)
    assert second == first
    assert (raw / "manifest.json").read_bytes() == manifest_bytes
    assert (raw / "t.csv").stat().st_ino == inode
    assert calls == []  # unchanged files are neither copied nor hashed again

    # a changed input is copied and hashed again; a dropped one leaves raw/
    (src / "t.csv").unlink()
    (src / "t.csv").write_bytes(PAYLOAD + b"b,r,c,test\r\n")
    third = crawl_files(raw, files[:1], dataset="ds", source=src)
    assert [f["path"] for f in third["files"]] == ["t.csv"]
    assert third["files"][0]["sha256"] == real(src / "t.csv")
    assert not (raw / "images").exists()
    assert json.loads((raw / "manifest.json").read_text())["files"][0]["bytes"] == len(PAYLOAD) + len(
        b"b,r,c,test\r\n"
    )


def test_read_manifest_detects_missing_raw(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="vlkge crawl"):
        read_manifest(tmp_path)
    src = tmp_path / "t.csv"
    src.write_bytes(PAYLOAD)
    crawl_files(tmp_path / "raw", [(src, "t.csv", "table")], dataset="ds", source=tmp_path)
    (tmp_path / "raw" / "t.csv").unlink()
    with pytest.raises(InputError, match="missing or changed"):
        read_manifest(tmp_path / "raw")

"""Downloads for real, against a local HTTP server on 127.0.0.1: resume after an interrupted
transfer, a corrupted file, offline errors, a whole dump with a derived file, an HTTP mirror,
and archives that try to write outside their directory."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from vlkge.pipeline.download import extract, fetch, part_path
from vlkge.pipeline.dumps import MISSING_LIST, Derived, Dump, Pin, dump_dir, fetch_dump
from vlkge.pipeline.sources import resolve_source

from tests.http_mirror import serve
from vlkge.errors import SourceError

BLOB = bytes(range(256)) * 4096  # 1 MiB
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLKGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VLKGE_DATA_MIRROR", raising=False)


def www(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "www"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_interrupted_transfer_resumes_with_a_range_request(tmp_path: Path) -> None:
    with serve(www(tmp_path, {"blob.bin": BLOB})) as server:
        server.cut["/blob.bin"] = 300_000  # the first response drops after 300 kB
        started = time.perf_counter()
        out = fetch(f"{server.url}/blob.bin", tmp_path / "dl" / "blob.bin", sha256=BLOB_SHA)
        elapsed = time.perf_counter() - started
    assert out.read_bytes() == BLOB and not part_path(out).exists()
    assert server.requests == [("/blob.bin", None), ("/blob.bin", "bytes=300000-")]
    assert server.sent["/blob.bin"] == len(BLOB)  # nothing sent twice
    assert elapsed < 10


def test_a_part_left_by_a_stopped_run_is_resumed_by_the_next(tmp_path: Path) -> None:
    target = tmp_path / "dl" / "blob.bin"
    with serve(www(tmp_path, {"blob.bin": BLOB})) as server:
        server.cut["/blob.bin"] = 500_000
        with pytest.raises(SourceError, match="interrupted 1 time") as err:
            fetch(f"{server.url}/blob.bin", target, sha256=BLOB_SHA, attempts=1)
        assert "run the same command again" in str(err.value)
        assert part_path(target).stat().st_size == 500_000 and not target.exists()
        fetch(f"{server.url}/blob.bin", target, sha256=BLOB_SHA)
    assert target.read_bytes() == BLOB
    assert server.requests[-1] == ("/blob.bin", "bytes=500000-")
    assert server.sent["/blob.bin"] == len(BLOB)


def test_corrupted_file_is_refused_and_not_kept(tmp_path: Path) -> None:
    bad = BLOB[:-1] + b"\x00"
    target = tmp_path / "dl" / "blob.bin"
    with serve(www(tmp_path, {"blob.bin": BLOB})) as server:
        server.corrupt["/blob.bin"] = bad
        with pytest.raises(SourceError) as err:
            fetch(f"{server.url}/blob.bin", target, sha256=BLOB_SHA)
    message = str(err.value)
    assert "sha256 mismatch for blob.bin" in message and f"{server.url}/blob.bin" in message
    assert BLOB_SHA in message and hashlib.sha256(bad).hexdigest() in message
    assert not target.exists() and not part_path(target).exists()


def test_server_that_ignores_ranges_sends_all_again(tmp_path: Path) -> None:
    source = tmp_path / "plain.bin"
    source.write_bytes(BLOB)
    target = tmp_path / "dl" / "plain.bin"
    target.parent.mkdir()
    part_path(target).write_bytes(BLOB[:1000])  # file:// answers a range with the whole file
    fetch(source.as_uri(), target, sha256=BLOB_SHA)
    assert target.read_bytes() == BLOB


def small_dump(base: str, files: dict[str, bytes], **derived_kw) -> Dump:
    pins = tuple(
        Pin(rel, f"{base}/{rel}", hashlib.sha256(data).hexdigest(), len(data)) for rel, data in files.items()
    )
    return Dump("toy", pins, **derived_kw)


def test_offline_error_names_each_file_its_url_and_destination(tmp_path: Path) -> None:
    files = {f"f{i}.csv": f"row {i}\n".encode() for i in range(5)}
    with serve(www(tmp_path, files)) as server:
        base = server.url
    dump = small_dump(base, files)  # the server is gone: connection refused
    with pytest.raises(SourceError) as err:
        fetch_dump(dump)
    message = str(err.value)
    root = dump_dir(dump)
    assert "5 file(s) of the toy dump could not be fetched" in message
    for rel in ("f0.csv", "f1.csv", "f2.csv"):
        assert f"{rel} from {base}/{rel} -> {root / rel}" in message
    listing = (root / MISSING_LIST).read_text().splitlines()
    assert listing[0].split("\t") == ["path", "url", "put_it_at", "sha256", "reason"]
    assert [line.split("\t")[:3] for line in listing[1:]] == [
        [rel, f"{base}/{rel}", str(root / rel)] for rel in files
    ]
    assert "VLKGE_DATA_MIRROR" in message and "\n" not in message


def test_dump_is_fetched_once_then_served_from_the_cache(tmp_path: Path) -> None:
    files = {"a/one.csv": b"1\n", "two.csv": b"2\n"}
    wordlist = b"alpha\nbeta\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:bz2") as tar:
        info = tarfile.TarInfo("pack/dict/words")
        info.size = len(wordlist)
        tar.addfile(info, io.BytesIO(wordlist))
    served = {**files, "pack.tar.bz2": archive.getvalue()}

    def make(root: Path, out: Path) -> None:
        unpacked = extract(root / "sources" / "pack.tar.bz2", root / "sources" / "pack")
        out.write_bytes((unpacked / "pack" / "dict" / "words").read_bytes().upper())

    with serve(www(tmp_path, served)) as server:
        source = Pin(
            "sources/pack.tar.bz2",
            f"{server.url}/pack.tar.bz2",
            hashlib.sha256(served["pack.tar.bz2"]).hexdigest(),
        )
        derived = Derived(
            "text/words.txt", hashlib.sha256(wordlist.upper()).hexdigest(), (source,), make, "upper case"
        )
        dump = small_dump(server.url, files, derived=(derived,))
        root = fetch_dump(dump)
        assert (root / "a" / "one.csv").read_bytes() == b"1\n"
        assert (root / "text" / "words.txt").read_bytes() == b"ALPHA\nBETA\n"
        count = len(server.requests)
        assert fetch_dump(dump) == root and len(server.requests) == count  # nothing fetched again
        # a derived file already there: its sources are not needed
        (root / "sources" / "pack.tar.bz2").unlink()
        assert fetch_dump(dump) == root and len(server.requests) == count


def test_http_mirror_serves_the_dump_layout_derived_files_included(tmp_path: Path, monkeypatch) -> None:
    files = {"t.csv": b"head,relation,tail,mode\n"}
    text = b"entity\tname\n"
    mirror = www(tmp_path, {"toy/t.csv": files["t.csv"], "toy/text/e.tsv": text})
    never = Pin("sources/never.tar", "http://127.0.0.1:9/never.tar", "0" * 64, use="source")

    def make(root: Path, out: Path) -> None:  # pragma: no cover - the mirror has the file
        raise AssertionError("derived files come from the mirror")

    dump = small_dump(
        "http://127.0.0.1:9",
        files,
        derived=(Derived("text/e.tsv", hashlib.sha256(text).hexdigest(), (never,), make, "-"),),
    )
    with serve(mirror) as server:
        monkeypatch.setenv("VLKGE_DATA_MIRROR", server.url)
        root = resolve_source("toy-set", None, dump)
    assert (root / "t.csv").read_bytes() == files["t.csv"] and (root / "text" / "e.tsv").read_bytes() == text
    assert sorted(p for p, _ in server.requests) == ["/toy/t.csv", "/toy/text/e.tsv"]


def test_local_mirror_found_by_the_dumps_own_name(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "mirror" / "toy").mkdir(parents=True)
    monkeypatch.setenv("VLKGE_DATA_MIRROR", str(tmp_path / "mirror"))
    dump = small_dump("http://127.0.0.1:9", {"t.csv": b"x"})
    assert resolve_source("toy-v1", None, dump) == tmp_path / "mirror" / "toy"
    assert resolve_source("toy-v2", None, dump) == tmp_path / "mirror" / "toy"


def evil_tar(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../escaped.txt"),
        tarfile.TarInfo("ok/../../escaped.txt"),
        tarfile.TarInfo("/tmp/absolute-escape.txt"),
        symlink("link", "../.."),
        symlink("link", "/etc"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-up", "symlink-absolute"],
)
def test_archive_member_escaping_the_target_is_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = evil_tar(tmp_path / "evil.tar", member)
    dest = tmp_path / "work" / "out"
    with pytest.raises(SourceError, match="outside the target directory") as err:
        extract(archive, dest)
    assert str(archive) in str(err.value) and member.name in str(err.value)
    assert (
        not dest.exists()
        and not (tmp_path / "escaped.txt").exists()
        and not (tmp_path / "work" / "escaped.txt").exists()
    )
    assert not Path("/tmp/absolute-escape.txt").exists()


def test_zip_member_escaping_the_target_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr("../escaped.txt", b"no")
    with pytest.raises(SourceError, match="outside the target directory"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out").exists()


def test_device_member_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    archive = evil_tar(tmp_path / "dev.tar", info)
    with pytest.raises(SourceError, match="device or pipe"):
        extract(archive, tmp_path / "out")


def test_good_archive_with_inner_links_unpacks(tmp_path: Path) -> None:
    archive = tmp_path / "good.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("pkg/a.txt", b"a"), ("pkg/sub/b.txt", b"b")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(symlink("pkg/sub/to_a", "../a.txt"))
    out = extract(archive, tmp_path / "out")
    assert (out / "pkg" / "sub" / "b.txt").read_bytes() == b"b"
    assert os.readlink(out / "pkg" / "sub" / "to_a") == "../a.txt"

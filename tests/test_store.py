import json

from brittle.config import StageConfig
from brittle.store import JsonlStore


def test_store_resume_drops_partial_line_and_dedupes(tmp_path):
    s = JsonlStore(tmp_path / "r.jsonl")
    s.append([{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    with open(s.path, "a") as f:  # crash mid-write
        f.write('{"id": "c", "v"')
    assert s.done() == {"a", "b"}
    s.append([{"id": "c", "v": 3}])
    lines = s.path.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a", "b", "c"]
    s.append([{"id": "a", "v": 9}])  # last write wins, no duplicate key in records()
    assert [r["v"] for r in s.records()] == [9, 2, 3]


def test_config_yaml_overrides_and_errors(tmp_path):
    import pytest

    from brittle.errors import BrittleError

    class C(StageConfig):
        k: int = 3

    (tmp_path / "c.yaml").write_text("k: 5\n")
    assert C.load(tmp_path / "c.yaml").k == 5
    assert C.load(tmp_path / "c.yaml", k=7).k == 7
    (tmp_path / "bad.yaml").write_text("k: [1\n")
    with pytest.raises(BrittleError, match="bad.yaml"):
        C.load(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("kk: 1\n")
    with pytest.raises(BrittleError, match="kk"):
        C.load(tmp_path / "typo.yaml")
    cfg = C.load(run_dir=tmp_path / "run")
    assert "k: 3" in cfg.echo().read_text()


# ---------------------------------------------------------------- issue 16.5: several writers,
# corrupt middle lines, kill -9


import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brittle.store import write_json

WRITER = r"""
import random, sys
from brittle.store import JsonlStore
path, wid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(wid)
s = JsonlStore(path, key="id")
i = 0
while i < n:
    k = rng.choice([1, 2, 7, 60, 250])  # 250 records ~ 20 kB: several write() calls unlocked
    s.append({"id": f"{wid}-{j}", "pad": "x" * 40} for j in range(i, min(n, i + k)))
    i += k
"""


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_three_concurrent_writers_lose_nothing_and_duplicate_nothing(tmp_path):
    path, n, writers = tmp_path / "r.jsonl", 10_000, ("a", "b", "c")
    procs = [_spawn(WRITER, path, w, n) for w in writers]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    raw = path.read_bytes().splitlines()
    ids = [json.loads(line)["id"] for line in raw]  # every line parses: nothing interleaved
    assert len(ids) == len(set(ids)) == n * len(writers)  # no loss, no duplicate
    assert set(ids) == {f"{w}-{j}" for w in writers for j in range(n)}
    assert not (tmp_path / "r.jsonl.corrupt").exists()


def test_corrupt_middle_line_is_quarantined_and_regenerated(tmp_path, caplog):
    s = JsonlStore(tmp_path / "g.jsonl")
    s.append([{"id": str(i), "v": i} for i in range(5)])
    lines = s.path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"id": "2", "v": \x00garbage\n'  # disk error / hand edit in the middle
    s.path.write_bytes(b"".join(lines))
    fresh = JsonlStore(s.path)
    assert fresh.done() == {"0", "1", "3", "4"}  # readable, no ValueError; '2' is to redo
    assert "corrupt" in caplog.text
    fresh.append([{"id": "2", "v": 2}])  # the re-run regenerates it; the bad line moves away
    assert fresh.quarantined == 1
    assert (tmp_path / "g.jsonl.corrupt").read_bytes() == b'{"id": "2", "v": \x00garbage\n'
    assert [r["v"] for r in JsonlStore(s.path).records()] == [0, 1, 3, 4, 2]
    assert all(json.loads(x) for x in s.path.read_bytes().splitlines())


def test_repair_never_truncates_a_complete_record_without_newline_of_a_live_writer(tmp_path):
    """Readers ignore an unterminated last line (it may be another writer mid-append) and
    only a writer holding the lock truncates it."""
    s = JsonlStore(tmp_path / "r.jsonl")
    s.append([{"id": "a"}])
    with open(s.path, "ab") as f:
        f.write(b'{"id": "b"}')  # complete JSON, no newline yet
    assert s.done() == {"a"}
    assert s.path.read_bytes().endswith(b'{"id": "b"}')  # reading changed nothing


KILLED_WRITER = r"""
import sys
from brittle.store import JsonlStore
s = JsonlStore(sys.argv[1], key="id")
done = s.done()
todo = [i for i in range(int(sys.argv[2])) if str(i) not in done]
for k in range(0, len(todo), 40):
    s.append({"id": str(i), "pad": "y" * 200} for i in todo[k:k + 40])
print("finished")
"""


def test_kill_9_mid_write_then_resume_equals_uninterrupted(tmp_path):
    n = 8_000
    ref = tmp_path / "ref.jsonl"
    p = _spawn(KILLED_WRITER, ref, n)
    p.communicate(timeout=300)
    path = tmp_path / "run.jsonl"
    p = _spawn(KILLED_WRITER, path, n)
    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 300_000):
        time.sleep(0.005)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    partial = JsonlStore(path).done()
    assert 0 < len(partial) < n
    with open(path, "ab") as f:  # and a torn last record, as a kill inside write() leaves
        f.write(b'{"id": "torn", "pad": "yy')
    p = _spawn(KILLED_WRITER, path, n)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and b"finished" in out, err.decode()[-2000:]
    ids = [json.loads(x)["id"] for x in path.read_bytes().splitlines()]
    assert len(ids) == len(set(ids)) == n
    assert JsonlStore(path).records() and sorted(ids, key=int) == sorted(
        (json.loads(x)["id"] for x in ref.read_bytes().splitlines()), key=int)


def test_unusable_store_paths_are_one_line_errors(tmp_path):
    from brittle.errors import BrittleError

    (tmp_path / "file").write_text("x")
    with pytest.raises(BrittleError, match="file: exists and is not a directory"):
        JsonlStore(tmp_path / "file" / "g.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(BrittleError, match="dir.jsonl: is a directory"):
        JsonlStore(tmp_path / "dir.jsonl").records()
    with pytest.raises(BrittleError, match="exists and is not a directory"):
        write_json(tmp_path / "file" / "m.json", {})


def test_write_json_redacts_url_credentials(tmp_path):
    p = write_json(tmp_path / "m.json", {"model": "openai:m@http://u:hunter2@h:1/v1?api_key=k3y",
                                          "nested": ["sk-abcdefghijklmnop1234567"]})
    text = Path(p).read_text()
    assert "hunter2" not in text and "k3y" not in text and "abcdefghijklmnop" not in text
    assert "http://***@h:1/v1?api_key=***" in text

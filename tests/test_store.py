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

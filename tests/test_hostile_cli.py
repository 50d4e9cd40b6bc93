"""The CLI as a hostile user drives it (issue 16.6 / 16.7 / 16.8): every known bad input is
one readable line and exit 1 (or a usage error, exit 2) *before* any work starts, and none
of them reaches ``main()``'s last resort (the crash log). Plus a bounded hypothesis fuzz of
every command's options (no network, the tiny model) that must never show a traceback.

Each case runs ``brittle.cli.main(argv)`` in-process: exactly what the ``brittle`` script runs.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from brittle.cli import main

# ---------------------------------------------------------------- hostile files


@pytest.fixture(scope="module")
def H(tmp_path_factory) -> dict[str, str]:  # a namespace of hostile paths
    root = tmp_path_factory.mktemp("hostile")
    from brittle.models.tiny import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    good = root / "good_model"
    tiny_model(tok).save_pretrained(good)
    tok.save_pretrained(good)
    import shutil

    for name in ("trunc_model", "notok_model", "corrupt_model"):
        shutil.copytree(good, root / name)
    st = root / "trunc_model" / "model.safetensors"
    with open(st, "r+b") as f:
        f.truncate(st.stat().st_size // 2)
    (root / "corrupt_model" / "model.safetensors").write_bytes(os.urandom(4096))
    for f in (root / "notok_model").iterdir():
        if "token" in f.name or "chat_template" in f.name:
            f.unlink()
    (root / "random.gguf").write_bytes(os.urandom(4096))
    (root / "p.txt").write_text("How do I bake bread?\nTell me a joke\n")
    (root / "train.jsonl").write_text("".join(
        json.dumps({"instruction": f"Name a colour {i}", "output": "Blue."}) + "\n" for i in range(4)))
    (root / "dup.txt").write_text("How do I bake bread?\nTell me a joke\nHow do I bake bread?\n")
    (root / "dir.txt").mkdir()
    (root / "loop.txt").symlink_to(root / "loop.txt")
    (root / "dangling.txt").symlink_to(root / "nowhere.txt")
    os.mkfifo(root / "fifo.txt")
    (root / "afile").write_text("x")
    (root / "bad.yaml").write_text("model: [unclosed\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    return {p.name: str(p) for p in root.iterdir()} | {"missing.txt": str(root / "missing.txt"),
                                                        "root": str(root)}


@pytest.fixture(autouse=True)
def _no_network_no_hang(monkeypatch):
    """Nothing here may reach the network or block: httpx to anything but 127.0.0.1 fails,
    and each case gets an alarm (a blocking open of a FIFO would otherwise hang)."""
    import httpx

    real = httpx.Client.send

    def local_only(self, request, *a, **k):
        if request.url.host not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"network access to {request.url.host}")
        return real(self, request, *a, **k)

    monkeypatch.setattr(httpx.Client, "send", local_only)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def hang(*_):
        raise TimeoutError("a CLI call blocked for 120 s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _restore_http_defaults(monkeypatch):
    from brittle.models import openai_backend as ob

    monkeypatch.setattr(ob, "HTTP_DEFAULTS", dict(ob.HTTP_DEFAULTS))


def run(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stdout+stderr) of ``brittle ARGV`` through ``main()``."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out + out.err


def assert_clean(code: int, text: str) -> None:
    assert "Traceback" not in text, text[-3000:]
    assert "a bug in brittle" not in text, f"reached the last resort:\n{text[-3000:]}"
    assert code in (0, 1, 2), (code, text[-2000:])


# ---------------------------------------------------------------- known bad inputs

R = "--run-dir"
EVAL = ["eval", "--model", "tiny:llama", "--max-new-tokens", "2"]
ATTACK = ["attack", "--model", "tiny:llama", "--adapter", "none", "--eval-limit", "1"]

# (id, argv builder, exit code, regex the one-line error must match)
KNOWN_BAD: list[tuple[str, Callable[[dict, Path], list[str]], int, str]] = [
    ("prompts-missing", lambda h, t: EVAL + ["--prompts", h["missing.txt"], R, str(t)], 1, r"missing\.txt:0: no such file"),
    ("prompts-directory", lambda h, t: EVAL + ["--prompts", h["dir.txt"], R, str(t)], 1, r"dir\.txt:0: is a directory"),
    ("prompts-symlink-loop", lambda h, t: EVAL + ["--prompts", h["loop.txt"], R, str(t)], 1, r"loop\.txt:0: symbolic link loop"),
    ("prompts-dangling-link", lambda h, t: EVAL + ["--prompts", h["dangling.txt"], R, str(t)], 1, r"dangling\.txt:0: broken symbolic link"),
    ("prompts-fifo", lambda h, t: EVAL + ["--prompts", h["fifo.txt"], R, str(t)], 1, r"fifo\.txt:0: is a named pipe"),
    ("prompts-duplicate", lambda h, t: EVAL + ["--prompts", h["dup.txt"], R, str(t)], 1, r"dup\.txt:3: duplicate prompt \(same as line 1\)"),
    ("run-dir-is-a-file", lambda h, t: EVAL + ["--prompts", h["p.txt"], R, h["afile"]], 1, r"afile: exists and is not a directory"),
    ("run-dir-under-a-file", lambda h, t: EVAL + ["--prompts", h["p.txt"], R, h["afile"] + "/sub"], 1, r"afile is not a directory"),
    ("model-dir-missing", lambda h, t: ["eval", "--model", str(t / "no_model"), "--prompts", h["p.txt"], R, str(t)], 1, r"no_model: no such model directory"),
    ("model-truncated-safetensors", lambda h, t: ["eval", "--model", h["trunc_model"], "--prompts", h["p.txt"], R, str(t)], 1, r"trunc_model: corrupt or truncated safetensors"),
    ("model-corrupt-safetensors", lambda h, t: ["eval", "--model", h["corrupt_model"], "--prompts", h["p.txt"], R, str(t)], 1, r"corrupt_model: corrupt or truncated safetensors"),
    ("model-random-gguf", lambda h, t: ["eval", "--model", h["random.gguf"], "--prompts", h["p.txt"], R, str(t)], 1, r"random\.gguf: not a GGUF file"),
    ("model-without-tokenizer", lambda h, t: ["eval", "--model", h["notok_model"], "--prompts", h["p.txt"], R, str(t)], 1, r"notok_model: no tokenizer files"),
    ("model-is-a-plain-file", lambda h, t: ["eval", "--model", h["afile"], "--prompts", h["p.txt"], R, str(t)], 1, r"afile: is a file, not a model directory"),
    ("config-fifo", lambda h, t: ["eval", "--config", h["fifo.txt"], R, str(t)], 1, r"fifo\.txt: is a named pipe"),
    ("config-bad-yaml", lambda h, t: ["eval", "--config", h["bad.yaml"], R, str(t)], 1, r"bad\.yaml: cannot read config"),
    ("config-not-a-mapping", lambda h, t: ["eval", "--config", h["list.yaml"], R, str(t)], 1, r"list\.yaml: config must be a mapping"),
    ("endpoint-without-scheme", lambda h, t: ["eval", "--model", "openai:llama3@127.0.0.1:18110", "--prompts", h["p.txt"], R, str(t)], 1, r"has no scheme; write openai:llama3@http://127\.0\.0\.1:18110"),
    ("endpoint-missing", lambda h, t: ["eval", "--model", "openai:gpt-4o-mini", "--prompts", h["p.txt"], R, str(t)], 1, r"has no endpoint"),
    ("judge-endpoint-without-scheme", lambda h, t: EVAL + ["--prompts", h["p.txt"], "--judge-backend", "openai:j@host:1", R, str(t)], 1, r"judge_backend: .*no scheme"),
    ("attack-seeds-empty", lambda h, t: ATTACK + ["--seeds", ",", R, str(t)], 1, r"seeds: needs at least one value"),
    ("attack-seeds-negative", lambda h, t: ATTACK + ["--seeds", "-1", R, str(t)], 1, r"seeds must be in"),
    ("attack-seeds-text", lambda h, t: ATTACK + ["--seeds", "abc", R, str(t)], 1, r"seeds\.0: Input should be a valid integer"),
    ("attack-n-empty", lambda h, t: ATTACK + ["--n", ",", R, str(t)], 1, r"n: needs at least one value"),
    ("attack-lr-negative", lambda h, t: ATTACK + ["--lr", "-1", R, str(t)], 1, r"fine-tuning option lr: .*greater than 0"),
    ("attack-epochs-zero", lambda h, t: ATTACK + ["--epochs", "0", R, str(t)], 1, r"fine-tuning option epochs: .*greater than 0"),
    ("attack-kind-unknown", lambda h, t: ATTACK + ["--kind", "nope", R, str(t)], 1, r"unknown attack kind\(s\) \['nope'\]"),
    ("attack-data-missing", lambda h, t: ATTACK + ["--kind", "data", "--data", h["missing.txt"], R, str(t)], 1, r"missing\.txt: no such file"),
    ("attack-preset-unknown", lambda h, t: ATTACK + ["--preset", "nope", R, str(t)], 1, r"unknown preset 'nope'"),
    ("select-compare-seeds-text", lambda h, t: ["select", "--compare", "--seeds", "abc", R, str(t)], 2, r"'abc' is not an integer"),
    ("select-compare-seeds-empty", lambda h, t: ["select", "--compare", "--seeds", ",", R, str(t)], 2, r"needs at least one integer"),
    ("timeout-zero", lambda h, t: ["--request-timeout", "0", "data", "list"], 2, r"request-timeout"),
    ("retries-negative", lambda h, t: ["--max-retries", "-1", "data", "list"], 2, r"max-retries"),
    ("finetune-lr-negative", lambda h, t: ["finetune", "--data", h["p.txt"], "--model", "tiny:llama", "--lr", "-1", R, str(t)], 1, r"lr: .*greater than 0"),
    ("finetune-data-directory", lambda h, t: ["finetune", "--data", h["dir.txt"], "--model", "tiny:llama", R, str(t)], 1, r"dir\.txt:0: is a directory"),
    ("validate-fifo", lambda h, t: ["data", "validate", h["fifo.txt"]], 1, r"fifo\.txt:0: is a named pipe"),
    ("validate-loop", lambda h, t: ["data", "validate", h["loop.txt"]], 1, r"loop\.txt:0: symbolic link loop"),
    ("models-info-missing", lambda h, t: ["models", "info", str(t / "no_model")], 1, r"no such model directory"),
    ("models-info-random-gguf", lambda h, t: ["models", "info", h["random.gguf"]], 1, r"not a GGUF file"),
]


@pytest.mark.parametrize("case", KNOWN_BAD, ids=[c[0] for c in KNOWN_BAD])
def test_known_bad_input_is_one_line_before_any_work(case, H, tmp_path, capsys, monkeypatch):
    import re

    _, argv, want_code, pattern = case
    # work must not start: a stage that got past validation would train / score
    import brittle.select.run as select_run

    def no_work(*a, **k):
        raise AssertionError("work started before the bad input was reported")

    monkeypatch.setattr(select_run, "run_select", no_work)
    monkeypatch.setattr("brittle.train.align.install_alignment", no_work)
    code, text = run(argv(H, tmp_path / "run"), capsys)
    assert_clean(code, text)
    assert code == want_code, text[-2000:]
    assert re.search(pattern, text), text[-2000:]
    if code == 1:  # one line (a progress bar may share it)
        assert len([ln for ln in text.splitlines() if ln.strip()]) == 1, text[-2000:]


def test_openai_reply_content_int_or_parts_through_the_cli(H, tmp_path, capsys):
    from tests.models.test_openai_backend import FakeServer

    for content, want in ((42, r"reply content must be a string"), ([{"type": "text", "text": "Sure."}], None)):
        srv = FakeServer(require_key=None)
        srv.reply = lambda body, c=content: {"choices": [{"message": {"role": "assistant", "content": c}}]}
        with srv:
            code, text = run(["eval", "--model", f"openai:m@{srv.url}", "--prompts", H["p.txt"],
                              R, str(tmp_path / str(type(content).__name__))], capsys)
        assert_clean(code, text)
        if want:
            import re

            assert code == 1 and re.search(want, text), text[-2000:]
        else:
            assert code == 0, text[-2000:]


@pytest.mark.parametrize("where", ["global", "eval"])
def test_request_timeout_and_max_retries_reach_the_endpoint(where, H, tmp_path, capsys):
    import time

    from tests.models.test_openai_backend import FakeServer

    opts = ["--request-timeout", "0.3", "--max-retries", "0"]
    with FakeServer(require_key=None, hang_first=3.0) as srv:
        t0 = time.perf_counter()
        argv = ["eval", "--model", f"openai:m@{srv.url}", "--prompts", H["p.txt"], R, str(tmp_path)]
        code, text = run(opts + argv if where == "global" else argv + opts, capsys)
        took = time.perf_counter() - t0
    assert_clean(code, text)
    assert code == 1 and "giving up after 1 attempts" in text, text[-2000:]
    assert took < 3.0


def test_data_validate_json_prints_json_on_failure_too(H, capsys):
    code, text = run(["data", "validate", H["dir.txt"], "--json"], capsys)
    assert code == 1
    obj = json.loads(text[: text.rindex("}") + 1])
    assert obj["ok"] is False and "is a directory" in obj["error"]


# ---------------------------------------------------------------- the last resort itself


def test_unexpected_exception_is_one_line_plus_crash_log(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("BRITTLE_CACHE", str(tmp_path / "cache"))

    def boom():
        raise RuntimeError("boom at http://user:pw@host/x")

    monkeypatch.setattr("brittle.data.embedded.list_datasets", boom)
    code, text = run(["data", "list"], capsys)
    assert code == 1 and "Traceback" not in text
    line = [ln for ln in text.splitlines() if ln.strip()]
    assert len(line) == 1 and "unexpected RuntimeError: boom" in line[0] and "--debug" in line[0]
    assert "pw@" not in text
    log = Path(line[0].split("traceback in ")[1].split(";")[0])
    assert log.is_file() and "Traceback" in log.read_text() and "boom" in log.read_text()
    assert "pw@" not in log.read_text()
    code, text = run(["--debug", "data", "list"], capsys)
    assert code == 1 and "Traceback" in text and "RuntimeError: boom" in text


# ---------------------------------------------------------------- hypothesis fuzz

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# values a hostile user types, plus a few that work (the first is the "simplest" hypothesis
# starts from); paths are filled in from the fixture
VALUES = ["1", "2", "0", "-1", "", ",", ",,", "3", "1e999", "nan", "-inf", "0.5", "-0.5", "abc",
          "tiny:llama", "embedded:nope", "openai:m@127.0.0.1:1", "openai:m", "hf:", "vllm:",
          "harmful", "harmful,over-refusal", "refusal", "nope", "all", "cpu", "auto", "float32",
          "lora", "full", "none", "@", "../..", "~", "é字\u200b", "a" * 300,
          "{{p.txt}}", "{{train.jsonl}}", "{{dup.txt}}", "{{missing.txt}}", "{{dir.txt}}", "{{loop.txt}}",
          "{{fifo.txt}}", "{{afile}}", "{{random.gguf}}", "{{trunc_model}}", "{{notok_model}}",
          "{{good_model}}", "{{bad.yaml}}", "{{list.yaml}}", "{{run}}", "{{afile}}/sub"]
SKIP = {("data", "fetch")}  # downloads from PyPI by design
# a working command line to start from (hostile options are added on top; a repeated option
# overrides it): the tiny model runs for real in eval, everything else stops where work
# starts. Options a command does not (or no longer) have are left out.
BASE_ARGS = {("data", "validate"): ["{{train.jsonl}}"], ("data", "show"): ["harmful"],
             ("models", "info"): ["tiny:llama"], ("audit",): ["{{train.jsonl}}"]}
BASE_OPTS = {"--model": "tiny:llama", "--suite": "harmful", "--limit": "2", "--eval-limit": "1", "--max-new-tokens": "2",
             "--run-dir": "{{run}}", "--data": "{{train.jsonl}}", "--adapter": "none", "--pool-limit": "4",
             "--out": "{{run}}/out.jsonl", "--n": "2"}
SAFE_BASE = {("eval",), ("finetune",), ("attack",), ("select",), ("audit",), ("data", "validate"),
             ("data", "show"), ("models", "info"), ("diagnose", "synth"), ("features",)}


def _commands() -> list[tuple[tuple[str, ...], list[tuple[str, bool, bool]]]]:
    """(path, [(option or argument name, is_flag, is_argument)]) for every leaf command."""
    import typer.main

    from brittle.cli import app

    out = []

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
            return
        if path in SKIP:
            return
        params = []
        for p in cmd.params:
            if p.param_type_name == "argument":
                params.append((p.name, False, True))
            elif p.opts and p.opts[0].startswith("--"):
                params.append((p.opts[0], bool(getattr(p, "is_flag", False)), False))
        out.append((path, params))

    walk(typer.main.get_command(app), ())
    return out


COMMANDS = _commands()


def _real() -> dict:
    from brittle.models import backends, load

    return {"load_model": load.load_model, "make_backend": backends.make_backend}


_REAL = _real()  # before any test patches them


class _WorkStarted(BaseException):  # not an Exception: nothing may swallow it
    """Raised by stubs where real work (a model, training, a request) would start."""


@st.composite
def command_lines(draw) -> list[str]:
    """A command line from a seeded Random (nearby seeds give unrelated lines: diverse)."""
    import random

    rnd = random.Random(draw(st.integers(0, 2**63)))
    group = rnd.choice(sorted({p[0] for p, _ in COMMANDS}))  # every group equally likely
    path, params = rnd.choice([c for c in COMMANDS if c[0][0] == group])
    argv = list(path)
    names = {n for n, _, is_arg in params if not is_arg}
    base = path in SAFE_BASE and rnd.random() < 0.7  # mostly from a working line
    if base:
        argv += BASE_ARGS.get(path, [])
        for name, value in BASE_OPTS.items():
            if name in names and not (name == "--adapter" and path == ("eval",)):
                argv += [name, value]
    for name, is_flag, is_arg in params:
        if is_arg:
            if not (base and path in BASE_ARGS):
                argv.append(rnd.choice(VALUES))
        elif rnd.random() < 0.1:
            argv += [name] if is_flag else [name, rnd.choice(VALUES)]
    if rnd.random() < 0.25:
        argv = [rnd.choice(["--max-retries", "--request-timeout"]), rnd.choice(["1", "0", "-1", "x", "0.5"])] + argv
    return argv


# bounded in the default run; BRITTLE_FUZZ_EXAMPLES=2000 explores (randomised) for a deeper hunt
_DEEP = int(os.environ.get("BRITTLE_FUZZ_EXAMPLES", "0"))


@settings(max_examples=_DEEP or 40, deadline=None, derandomize=not _DEEP, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=command_lines())
def test_fuzzed_command_lines_never_show_a_traceback(argv, H, capsys, monkeypatch, tmp_path_factory):
    """Hypothesis-generated command lines over every command's options: exit 0/1/2, no
    traceback, never the last resort. Work that would start (loading a model, training,
    an HTTP request) is stubbed to stop there, so each example stays fast."""
    from brittle.models import backends, load

    def stop(*a, **k):
        raise _WorkStarted

    real_load = _REAL["load_model"]

    def load_model(spec, *a, **k):  # bad model files are checked for real, then stop
        s = str(spec)
        if s.startswith("tiny:") and argv[:1] in (["eval"], ["models"]):
            return real_load(spec, *a, **k)  # the tiny model runs for real (replies canned)
        if s.endswith(".gguf"):
            load.check_gguf_file(Path(s))
        elif not s.startswith(("tiny:", "embedded:")):
            load.check_local_spec(s)
        raise _WorkStarted

    real_make = _REAL["make_backend"]

    def make_backend(spec, **k):
        backends.validate_spec(spec)
        if str(spec).removeprefix("hf:").startswith("tiny:") and argv[:1] == ["eval"]:
            return real_make(spec, **k)
        raise _WorkStarted

    monkeypatch.setattr(load, "load_model", load_model)
    monkeypatch.setattr(backends, "make_backend", make_backend)
    from brittle.models.generate import HFBackend

    monkeypatch.setattr(HFBackend, "generate", lambda self, convs, **k: ["I cannot help with that."] * len(convs))
    monkeypatch.setattr("brittle.models.openai_backend.OpenAIBackend._post", stop)
    import transformers

    monkeypatch.setattr(transformers.Trainer, "train", stop)
    signal.alarm(60)  # per example
    run_dir = tmp_path_factory.mktemp("fuzz")
    monkeypatch.chdir(run_dir)  # relative paths ("1", "", "runs/…") land here, not in the repo
    argv = [a.replace("{{run}}", str(run_dir)) for a in argv]
    for name, p in H.items():
        argv = [a.replace("{{" + name + "}}", p) for a in argv]
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except _WorkStarted:
        code = 0  # validation passed and real work was about to start
    out = capsys.readouterr()
    if os.environ.get("BRITTLE_FUZZ_LOG"):  # see what the fuzz exercised
        with open(os.environ["BRITTLE_FUZZ_LOG"], "a") as f:
            f.write(json.dumps({"argv": argv, "code": code, "tail": (out.out + out.err)[-200:]}) + "\n")
    assert_clean(code, out.out + out.err)

"""The Python API a notebook user calls: one function per stage, typed results.

    import brittle
    res = brittle.evaluate(model="embedded:smollm2-135m", suites=["harmful"], limit=20)
    res.to_pandas()          # one row per (suite, metric) with its interval
    print(res.summary())

Each function takes the stage config's fields as keywords (the same names, types and
defaults as the CLI options and the YAML configs: ``EvalConfig``, ``AttackConfig``,
``SelectConfig``, ``AuditConfig``), validates them exactly as the CLI does (a bad value is
one :class:`~brittle.errors.BrittleError`), runs the stage into ``run_dir`` and returns a
result object that reads the files the stage wrote. The CLI is a thin layer over the same
stage functions, so a notebook and a shell run produce the same files.

``brittle.evaluate`` and ``brittle.select`` are also the names of sub-packages; those
packages are made callable (see :func:`brittle._callable.make_module_callable`) so both
``brittle.evaluate(...)`` and ``import brittle.evaluate.metrics`` work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brittle.store import read_json

if TYPE_CHECKING:
    import pandas as pd

Interval = tuple[float, float, float]


def _is_interval(v: Any) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) == 3
            and all(isinstance(x, (int, float)) or x is None for x in v))


def _fmt_interval(v: Any, pct: bool = True) -> str:
    p, lo, hi = (math.nan if x is None else float(x) for x in v)
    if math.isnan(p):
        return "n/a"
    if pct:
        return f"{100 * p:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"
    return f"{p:.3g} [{lo:.3g}, {hi:.3g}]"


def _interval_rows(prefix: str, d: dict[str, Any]) -> list[tuple[str, Any]]:
    """Flatten nested metric dicts into (dotted name, [p, lo, hi]) pairs; per-category tables
    are left to :meth:`EvalResult.per_category`."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if _is_interval(v):
            out.append((name, v))
        elif isinstance(v, dict) and not k.endswith("per_category") and k != "histogram":
            out.extend(_interval_rows(f"{name}.", v))
    return out


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one ``brittle eval`` run (``run_dir/metrics.json``)."""

    run_dir: Path
    metrics: dict[str, Any] = field(repr=False)

    @property
    def suites(self) -> list[str]:
        return list(self.metrics.get("suites", {}))

    @property
    def judges(self) -> list[str]:
        return list(self.metrics.get("judges", {}))

    def to_pandas(self) -> pd.DataFrame:
        """One row per (suite, metric): ``suite, metric, n, value, lo, hi`` (95% intervals)."""
        import pandas as pd

        rows = []
        for suite, m in self.metrics.get("suites", {}).items():
            for name, (p, lo, hi) in _interval_rows("", m):
                rows.append({"suite": suite, "metric": name, "n": m.get("n"),
                             "value": p, "lo": lo, "hi": hi})
        return pd.DataFrame(rows, columns=["suite", "metric", "n", "value", "lo", "hi"])

    def per_category(self, suite: str) -> pd.DataFrame:
        """Refusal rate per category of one suite: ``category, n, refusal_rate, lo, hi``."""
        import pandas as pd

        cats = self.metrics.get("suites", {}).get(suite, {}).get("per_category", {})
        return pd.DataFrame(
            [{"category": c, "n": m.get("n"), "refusal_rate": m["refusal_rate"][0],
              "lo": m["refusal_rate"][1], "hi": m["refusal_rate"][2]} for c, m in cats.items()],
            columns=["category", "n", "refusal_rate", "lo", "hi"])

    def summary(self) -> str:
        """A few lines a person reads: per suite, n and the refusal rate with its interval,
        naming the judge (refusal phrases: a reply not opening with a refusal is *not* called
        harmful)."""
        lines = [f"eval of {self.metrics.get('model')} (judges: {', '.join(self.judges) or 'none'})"]
        for suite, m in self.metrics.get("suites", {}).items():
            parts = [f"n={m.get('n')}"]
            if "refusal_rate" in m:
                parts.append(f"refusal rate (refusal-phrase judge) {_fmt_interval(m['refusal_rate'])}")
            if "utility" in m:
                parts.append(f"utility ppl {_fmt_interval(m['utility']['ppl'], pct=False)}")
            lines.append(f"  {suite}: " + "; ".join(parts))
        return "\n".join(lines)


@dataclass(frozen=True)
class AttackResult:
    """The cells of one ``brittle attack`` sweep (``results.parquet`` / ``summary.csv``)."""

    run_dir: Path
    cells: pd.DataFrame = field(repr=False)

    def to_pandas(self) -> pd.DataFrame:
        """Per (kind, N): ASR by refusal phrases with its 95% interval (``summary.csv``)."""
        import pandas as pd

        path = self.run_dir / "summary.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    def summary(self) -> str:
        df = self.to_pandas()
        lines = [(f"attack sweep in {self.run_dir} ({len(self.cells)} cells); ASR = share of "
                  "harmful-suite replies not opening with a refusal (refusal-phrase judge)")]
        for r in df.itertuples(index=False):
            lines.append(f"  {r.kind} N={r.n}: ASR {_fmt_interval([r.asr, r.asr_lo, r.asr_hi])} "
                         f"({r.prompts} prompts, {r.seeds} seed(s))")
        return "\n".join(lines)


@dataclass(frozen=True)
class SelectResult:
    """Scores and selections of one ``brittle select`` run (``summary.json``, ``scores.parquet``)."""

    run_dir: Path
    info: dict[str, Any] = field(repr=False)

    @property
    def selections(self) -> dict[str, dict[str, Any]]:
        return dict(self.info.get("selections", {}))

    def to_pandas(self) -> pd.DataFrame:
        """One row per pool example with each method's score (``scores.parquet``)."""
        import pandas as pd

        path = self.run_dir / "scores.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def summary(self) -> str:
        lines = [(f"selection on {self.info.get('n_pool')} pool examples, K={self.info.get('k')}, "
                  f"methods: {', '.join(self.info.get('methods', []))}")]
        for name, s in self.selections.items():
            lines.append(f"  {name}: {s.get('n')} examples")
        return "\n".join(lines)


@dataclass(frozen=True)
class AuditResult:
    """Risk scores of a user's fine-tuning file (``audit.json``)."""

    run_dir: Path
    info: dict[str, Any] = field(repr=False)

    def to_pandas(self) -> pd.DataFrame:
        """One row per file row: ``row, id, score, rank, percentile, formats, dropped``."""
        import pandas as pd

        return pd.DataFrame(self.info.get("rows", []))

    def summary(self) -> str:
        i = self.info
        return (f"audit of {Path(str(i.get('file'))).name}: {i.get('n_rows')} rows, "
                f"{i.get('n_scored')} scored by {i.get('method')}, {i.get('n_dropped')} flagged "
                f"(filtered file: {Path(str(i.get('filtered_file'))).name})")


# ----------------------------------------------------------------------------- functions


def evaluate(**options: Any) -> EvalResult:
    """Run (or resume) an evaluation; ``options`` are :class:`EvalConfig` fields."""
    from brittle.evaluate.run import METRICS, EvalConfig, run_eval

    cfg = EvalConfig.from_options(**options)
    run_eval(cfg)
    return EvalResult(Path(cfg.run_dir), read_json(Path(cfg.run_dir) / METRICS))


def attack(**options: Any) -> AttackResult:
    """Run (or resume) an attack sweep; ``options`` are :class:`AttackConfig` fields."""
    import pandas as pd

    from brittle.train.attack import AttackConfig, run_attack

    cfg = AttackConfig.from_options(**options)
    cells = run_attack(cfg)
    return AttackResult(Path(cfg.run_dir), cells if cells is not None else pd.DataFrame())


def select(**options: Any) -> SelectResult:
    """Score a benign pool and write its selections; ``options`` are :class:`SelectConfig` fields."""
    from brittle.select.run import SelectConfig, run_select

    cfg = SelectConfig.from_options(**options)
    return SelectResult(Path(cfg.run_dir), run_select(cfg))


def audit(**options: Any) -> AuditResult:
    """Score a user's fine-tuning file for safety risk; ``options`` are :class:`AuditConfig` fields."""
    from brittle.select.audit import AuditConfig, run_audit

    cfg = AuditConfig.from_options(**options)
    return AuditResult(Path(cfg.run_dir), run_audit(cfg))

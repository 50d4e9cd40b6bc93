"""`brittle judges …` — list the judges; validate one against human labels."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def _fmt(iv: list[float], pct: bool = True) -> str:
    import math

    p, lo, hi = iv
    if any(math.isnan(x) for x in (p, lo, hi)):
        return "–"
    f = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:.2f}")
    return f"{f(p)} [{f(lo)}, {f(hi)}]"


def table(result: dict) -> str:
    """The human-readable agreement table (judge under test first, marked ``*``)."""
    head = (f"labels: {result['labels']} (n={result['n_pairs']}, {result['n_positive']} positive); "
            f"judge {result['judge']} predicts '{result['prediction']}'")
    cols = f"{'judge':<34} {'agree':>7}  {'accuracy':<18} {'FPR (false +)':<18} {'FNR (missed)':<18} {'kappa':<20} unscored"
    lines = [head, cols, "-" * len(cols)]
    for r in result["rows"]:
        name = ("* " if r["under_test"] else "  ") + r["judge"]
        lines.append(
            f"{name:<34} {r['agree']:>3}/{r['n_scored']:<3}  {_fmt(r['accuracy']):<18} {_fmt(r['fpr']):<18} "
            f"{_fmt(r['fnr']):<18} {_fmt(r['kappa'], pct=False):<20} {r['n_unscored']}"
        )
    lines.append("intervals: Wilson 95% (rates), percentile bootstrap 95% over pairs (kappa)")
    if result["labels"] == "jbb":
        lines.append("humans 1-3 are part of the majority label (their agreement is optimistic); "
                     "other rows: judges scored in JailbreakBench's classifier_comparison.csv")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    judges = typer.Typer(help="Judges: list them, validate one against human labels.", no_args_is_help=True)
    app.add_typer(judges, name="judges")

    @judges.command("list")
    def list_(json_: bool = JSON_OPT) -> None:
        """The judges `eval --judge` and `judges validate --judge` accept."""
        from brittle.evaluate.judges import JUDGE_HELP, measures

        rows = [{"judge": k, "measures": measures(k), "description": v} for k, v in JUDGE_HELP.items()]
        emit(rows, json_, "\n".join(f"{r['judge']:<13} {r['measures']:<14} {r['description']}" for r in rows)
             + "\n(or a custom rubric: --judge FILE.yaml)")

    # the judge options mean what they mean in `eval`: help from EvalConfig
    from brittle.cli.options import field_help, field_option
    from brittle.evaluate.run import EvalConfig as _EC

    @judges.command("validate")
    def validate(
        judge: str = typer.Option(..., "--judge", help="Judge to validate (see `brittle judges list`) or a rubric FILE.yaml."),
        labels: str = typer.Option("jbb", "--labels", help="'jbb' (JailbreakBench's 100 human-labelled pairs) or a CSV/JSONL file of prompt, response, label rows."),
        judge_backend: str | None = field_option(_EC, "judge_backend"),
        classifier: str | None = field_option(_EC, "classifier"),
        classifier_mode: str = typer.Option("guard", "--classifier-mode", help=field_help(_EC, "classifier_mode")),
        unsafe_labels: str | None = field_option(_EC, "unsafe_labels"),
        seed: int = typer.Option(0, "--seed", help="Seed (judge decoding, bootstrap)."),
        out: Path | None = typer.Option(None, "--out", help="Also write the result as JSON here."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Agreement of a judge with human labels: accuracy, FPR, FNR, Cohen's kappa (95% CIs),
        beside the judges already scored in the same file."""
        from brittle.evaluate.judges import make_judge
        from brittle.evaluate.validate import load_labels, validate_judge
        from brittle.store import write_json

        label_set = load_labels(labels)
        j = make_judge(judge, judge_backend=judge_backend, classifier_spec=classifier,
                       unsafe_labels=split_csv(unsafe_labels), classifier_mode=classifier_mode, seed=seed)
        result = validate_judge(j, label_set, seed=seed)
        if out is not None:
            write_json(out, result)
        emit(result, json_, table(result))

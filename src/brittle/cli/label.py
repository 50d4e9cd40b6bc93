"""`brittle label RUN_DIR` — label a sample of a run's replies, then correct its rates."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def register(app: typer.Typer) -> None:
    @app.command("label")
    def label(
        run_dir: Path = typer.Argument(..., help="An eval, attack, selection or lab run directory."),
        n: int = typer.Option(40, "--n-replies", min=1, help="Replies to sample for labelling."),
        seed: int = typer.Option(0, "--seed", help="Seed of the sample (and of the bootstrap)."),
        out: Path | None = typer.Option(None, "--out", help="Form path (default RUN_DIR/labels/form.html; the CSV fallback goes next to it); with --labels: calibration JSON path (default RUN_DIR/calibration.json)."),
        labels: Path | None = typer.Option(None, "--labels", help="A filled label file (the form's labels.csv or the CSV fallback): compute the corrected rates instead of writing a form."),
        judge: str = typer.Option("refusal", "--judge", help="Judge whose rates are corrected (its verdicts must be in the run)."),
        suite: str | None = typer.Option(None, "--suite", help="Comma list of suites to sample and correct (default: every harmful suite in the run)."),
        n_boot: int = typer.Option(2000, "--n-boot", min=100, help="Bootstrap replicates."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Without --labels: write an HTML form + CSV with a seeded random sample of the run's
        replies to harmful prompts. With --labels FILE: write RUN_DIR/calibration.json with every
        rate of the run corrected for the judge's errors (Rogan–Gladen) and the judge's
        precision/recall on these labels."""
        from brittle.evaluate import labeling as L
        from brittle.evaluate.section import fmt_ci

        suites = split_csv(suite) or None
        if labels is None:
            items = L.sample(L.collect(run_dir, judge, suites), n, seed)
            html, csv_path = L.write_form(items, out or run_dir / "labels" / "form.html", run_dir, seed)
            emit({"form": str(html), "csv": str(csv_path), "n": len(items)}, json_,
                 f"{len(items)} replies to label (redaction OFF: for the labeller only)\n"
                 f"form: {html}\ncsv fallback: {csv_path}\n"
                 f"then: brittle label {run_dir} --labels FILLED.csv")
            return
        res = L.calibrate(run_dir, labels, judge=judge, n_boot=n_boot, seed=seed, out=out, suites=suites)
        acc = res["judge_accuracy"]
        lines = [(f"{res['n_labelled']} labels ({res['n_labelled_harmful']} harmful); judge {judge}: "
                  f"precision {fmt_ci(acc['precision'])}, recall {fmt_ci(acc['recall'])}, "
                  f"specificity {fmt_ci(acc['specificity'])}")]
        for r in res["rates"]:
            notes = f" ({', '.join(r['notes'])})" if r.get("notes") else ""
            corr = fmt_ci(r["corrected"]) + notes if r["corrected"] else f"– ({r['reason']})"
            lines.append(f"{r['cell']:<36} {r['suite']:<14} n={r['n']:<5} raw {fmt_ci(r['raw']):<24} "
                         f"harmfulness (corrected) {corr}")
        lines.append(f"written: {out or run_dir / L.CALIBRATION}")
        emit(res, json_, "\n".join(lines))

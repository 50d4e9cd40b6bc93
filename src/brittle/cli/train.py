"""`brittle finetune`, `brittle align`, `brittle attack`."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune_cmd(
        data: Path = typer.Option(..., "--data", help="Training examples (JSONL/JSON/CSV: alpaca or messages)."),
        model: str | None = typer.Option(None, "--model", help="Model spec (default embedded:smollm2-135m)."),
        adapter: Path | None = typer.Option(None, "--adapter", help="Starting LoRA adapter directory."),
        start: str | None = typer.Option(None, "--start", help="With --adapter: continue | merge."),
        preset: str | None = typer.Option(None, "--preset", help="qi2023-full, he2024-full, lora-attack, align-lora."),
        method: str | None = typer.Option(None, "--method", help="lora | full."),
        epochs: float | None = typer.Option(None, "--epochs"),
        lr: float | None = typer.Option(None, "--lr"),
        batch_size: int | None = typer.Option(None, "--batch-size"),
        grad_accum: int | None = typer.Option(None, "--grad-accum"),
        max_length: int | None = typer.Option(None, "--max-length"),
        max_steps: int | None = typer.Option(None, "--max-steps"),
        lora_r: int | None = typer.Option(None, "--lora-r"),
        lora_alpha: int | None = typer.Option(None, "--lora-alpha"),
        seed: int | None = typer.Option(None, "--seed"),
        device: str | None = typer.Option(None, "--device", help="cpu | cuda | auto."),
        run_dir: Path | None = typer.Option(None, "--run-dir", help="Output directory (default runs/finetune)."),
        config: Path | None = typer.Option(None, "--config", help="YAML FinetuneConfig; flags override it."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Supervised fine-tuning (LoRA by default) with response-only loss."""
        from brittle.data.io import read_examples
        from brittle.train.sft import FinetuneConfig, train_model

        cfg = FinetuneConfig.load(
            config, model=model, adapter=str(adapter) if adapter else None, start=start,
            preset=preset, method=method, epochs=epochs, lr=lr, batch_size=batch_size,
            grad_accum=grad_accum, max_length=max_length, max_steps=max_steps, lora_r=lora_r,
            lora_alpha=lora_alpha, seed=seed, device=device, run_dir=run_dir,
        )
        res = train_model(cfg, read_examples(data))
        out = {k: v for k, v in res.stats.items() if k != "dropped_ids"}
        emit({"run_dir": str(cfg.run_dir), **out}, json_,
             f"saved {res.path}\n{out['n_trained']} examples ({out['n_dropped']} dropped), "
             f"{out['steps']} steps, loss {out['first_loss']:.4f} -> {out['final_loss']:.4f} "
             f"in {out['seconds']:.1f}s; log {cfg.run_dir / 'train_log.jsonl'}")

    @app.command("align")
    def align_cmd(
        model: str = typer.Option("embedded:smollm2-135m", "--model", help="Model spec."),
        quick: bool = typer.Option(True, "--quick/--full", help="Quick recipe (CPU, ~10 min) or full."),
        n_harmful: int | None = typer.Option(None, "--n-harmful", help="Harmful prompts + refusals."),
        n_benign: int | None = typer.Option(None, "--n-benign", help="Benign pairs."),
        n_contrast: int | None = typer.Option(
            None, "--n-contrast", help="Risky-sounding benign prompts answered by the model itself."
        ),
        epochs: float | None = typer.Option(None, "--epochs"),
        seed: int = typer.Option(0, "--seed"),
        force: bool = typer.Option(False, "--force", help="Retrain even if cached."),
        evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate before and after."),
        eval_limit: int | None = typer.Option(None, "--eval-limit", help="Prompts per eval suite."),
        device: str = typer.Option("auto", "--device"),
        run_dir: Path = typer.Option(Path("runs/align"), "--run-dir"),
        json_: bool = JSON_OPT,
    ) -> None:
        """Install alignment: train (or reuse) the cached safety LoRA adapter; evaluate it."""
        from brittle.train.align import install_alignment

        adapter = install_alignment(
            model, run_dir=run_dir / "train", quick=quick, n_harmful=n_harmful,
            n_benign=n_benign, n_contrast=n_contrast, epochs=epochs, seed=seed, force=force, device=device,
        )
        result: dict = {"adapter": str(adapter), "run_dir": str(run_dir)}
        if evaluate:
            from brittle.evaluate.run import EvalConfig, run_eval

            for label, ad in (("unaligned", None), ("aligned", adapter)):
                m = run_eval(EvalConfig(run_dir=run_dir / f"eval-{label}", model=model,
                                        adapter=ad, limit=eval_limit, seed=seed))
                result[label] = _headline(m)
        lines = [f"adapter: {adapter}"] + [
            f"{k:>9}: " + ", ".join(f"{n}={_pct(v)}" for n, v in result[k].items())
            for k in ("unaligned", "aligned") if k in result
        ]
        emit(result, json_, "\n".join(lines))

    @app.command("attack")
    def attack_cmd(
        n: str | None = typer.Option(None, "--n", help="Comma list of N, e.g. 0,1,2,5,10,25,50,100."),
        kind: str | None = typer.Option(None, "--kind", help="harmful,aoa,benign,data."),
        seeds: str | None = typer.Option(None, "--seeds", help="Comma list of seeds, e.g. 0,1,2."),
        data: Path | None = typer.Option(None, "--data", help="User examples for kind 'data'."),
        model: str | None = typer.Option(None, "--model"),
        adapter: str | None = typer.Option(None, "--adapter", help="Aligned adapter dir, 'auto' or 'none'."),
        preset: str | None = typer.Option(None, "--preset"),
        epochs: float | None = typer.Option(None, "--epochs"),
        lr: float | None = typer.Option(None, "--lr"),
        eval_limit: int | None = typer.Option(None, "--eval-limit"),
        device: str | None = typer.Option(None, "--device"),
        run_dir: Path | None = typer.Option(None, "--run-dir"),
        config: Path | None = typer.Option(None, "--config", help="YAML AttackConfig; flags override it."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Fine-tune the aligned model on N examples per kind/seed and measure ASR vs N."""
        from brittle.train.attack import AttackConfig, run_attack

        kinds = split_csv(kind) or None
        if data is not None and kinds is None:
            kinds = ["data"]
        train = {k: v for k, v in {"epochs": epochs, "lr": lr}.items() if v is not None} or None
        cfg = AttackConfig.load(
            config, n=n, kinds=kinds, seeds=seeds, data=str(data) if data else None, model=model,
            adapter=adapter, preset=preset, train=train, eval_limit=eval_limit, device=device,
            run_dir=run_dir,
        )
        df = run_attack(cfg)
        import pandas as pd

        summary = pd.read_csv(cfg.run_dir / "summary.csv") if (cfg.run_dir / "summary.csv").exists() else df
        emit({"run_dir": str(cfg.run_dir), "summary": summary.to_dict(orient="records")}, json_,
             summary.to_string(index=False) + f"\n\nresults: {cfg.run_dir / 'results.csv'}")


def _headline(m: dict) -> dict:
    s = m.get("suites", {})
    return {
        "harmful_refusal": (s.get("harmful-eval") or {}).get("refusal_rate"),
        "over_refusal": (s.get("over-refusal") or {}).get("refusal_rate"),
        "utility_nll": ((s.get("utility") or {}).get("utility") or {}).get("nll"),
    }


def _pct(v) -> str:
    if not v:
        return "n/a"
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"

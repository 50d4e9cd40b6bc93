"""`brittle diagnose …` and `brittle synth` (no logic here; see brittle.diagnose)."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def _parse_attacked(items: list[str]) -> dict[str, str]:
    from brittle.errors import BrittleError

    out = {}
    for it in items:
        label, sep, path = it.partition("=")
        if not sep or not label or not path:
            raise BrittleError(f"--attacked expects LABEL=DIR, got {it!r}")
        out[label] = path
    return out


def register(app: typer.Typer) -> None:
    diagnose = typer.Typer(
        help="Why alignment is shallow: per-token KL, prefilling, refusal direction, personas, synth.",
        no_args_is_help=True,
    )
    app.add_typer(diagnose, name="diagnose")

    def _run(which: list[str], config: Path | None, run_dir: Path | None, model: str | None,
             aligned_adapter: Path | None, base_model: str | None, attacked: list[str],
             attack_start: str | None, n: int | None, device: str | None, dtype: str | None,
             batch_size: int | None, max_new_tokens: int | None, json_: bool) -> None:
        from brittle.diagnose.run import DiagnoseConfig, check_diagnostics, run_diagnose

        overrides = dict(  # noqa: C408
            diagnostics=check_diagnostics(which) if which else None, run_dir=run_dir, model=model,
            aligned_adapter=aligned_adapter, base_model=base_model,
            attacked=_parse_attacked(attacked) or None, attack_start=attack_start, n_prompts=n,
            device=device, dtype=dtype, batch_size=batch_size, max_new_tokens=max_new_tokens,
        )
        cfg = DiagnoseConfig.load(config, **overrides)
        res = run_diagnose(cfg)
        emit(res, json_, f"diagnostics {', '.join(cfg.diagnostics)} written to {cfg.run_dir}")

    def _command(name: str, which: list[str], doc: str) -> None:
        @diagnose.command(name, help=doc)
        def cmd(
            config: Path | None = typer.Option(None, "--config", "-c", help="DiagnoseConfig YAML."),
            run_dir: Path | None = typer.Option(None, "--run-dir", help="Output directory."),
            model: str | None = typer.Option(None, "--model", help="Aligned model spec."),
            aligned_adapter: Path | None = typer.Option(None, "--aligned-adapter", help="Safety adapter dir."),
            base_model: str | None = typer.Option(None, "--base-model", help="Separate unaligned model spec."),
            attacked: list[str] = typer.Option([], "--attacked", help="LABEL=DIR (repeatable)."),
            attack_start: str | None = typer.Option(None, "--attack-start", help="merge|continue"),
            n: int | None = typer.Option(None, "--n", help="Prompts per diagnostic."),
            device: str | None = typer.Option(None, "--device", help="auto|cpu|cuda|mps"),
            dtype: str | None = typer.Option(None, "--dtype", help="auto|float32|bfloat16|float16"),
            batch_size: int | None = typer.Option(None, "--batch-size"),
            max_new_tokens: int | None = typer.Option(None, "--max-new-tokens"),
            json_: bool = JSON_OPT,
        ) -> None:
            _run(which, config, run_dir, model, aligned_adapter, base_model, attacked, attack_start, n,
                 device, dtype, batch_size, max_new_tokens, json_)

    _command("kl", ["kl"], "Per-token KL(aligned‖base) and KL(attacked‖aligned) per response position.")
    _command("prefill", ["prefill"], "Prefilling attack: ASR vs number of prefilled answer tokens.")
    _command("direction", ["direction"], "Refusal direction: projections and refusal under ablation.")
    _command("persona", ["persona"], "Refusal rate per persona statement and the spread.")
    _command("all", ["all"], "Every diagnostic (kl, prefill, direction, persona, synth).")

    @diagnose.command("run", help="Diagnostics named in --which (comma list) or the config.")
    def run_cmd(
        which: str | None = typer.Option(None, "--which", help="Comma list (default: the config's)."),
        config: Path | None = typer.Option(None, "--config", "-c"),
        run_dir: Path | None = typer.Option(None, "--run-dir"),
        json_: bool = JSON_OPT,
    ) -> None:
        _run(split_csv(which), config, run_dir, None, None, None, [], None, None, None, None, None, None,
             json_)

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", "-o", help="Output JSONL of (instruction, answer) examples."),
        model: str = typer.Option("embedded:smollm2-135m", "--model"),
        adapter: Path | None = typer.Option(None, "--adapter", help="PEFT adapter dir."),
        n: int = typer.Option(64, "--n", help="Instructions to sample (before dedup)."),
        seed: int = typer.Option(0, "--seed"),
        temperature: float = typer.Option(1.0, "--temperature"),
        top_p: float = typer.Option(1.0, "--top-p"),
        max_instruction_tokens: int = typer.Option(64, "--max-instruction-tokens"),
        max_response_tokens: int = typer.Option(128, "--max-response-tokens", help="0 = no answers."),
        batch_size: int = typer.Option(16, "--batch-size"),
        device: str = typer.Option("auto", "--device"),
        dtype: str = typer.Option("auto", "--dtype"),
        json_: bool = JSON_OPT,
    ) -> None:
        """MAGPIE self-synthesis: the model writes instructions from the pre-query template."""
        from brittle.diagnose.synth import (
            SynthConfig,
            harmful_share,
            synthesize,
            write_examples_jsonl,
        )
        from brittle.models.load import load_model

        m, tok = load_model(model, device=device, dtype=dtype, adapter=adapter)
        cfg = SynthConfig(n=n, seed=seed, temperature=temperature, top_p=top_p,
                          max_instruction_tokens=max_instruction_tokens,
                          max_response_tokens=max_response_tokens, batch_size=batch_size)
        exs = synthesize(m, tok, cfg, fingerprint_parts=[model, str(adapter)], progress=True)
        write_examples_jsonl(exs, out)
        share = harmful_share([e.prompt for e in exs])
        res = {"out": str(out), "n_sampled": n, "n_unique": len(exs), **share}
        emit(res, json_, f"{len(exs)} unique examples -> {out}; harmful-looking "
                         f"{100 * share['harmful_share']:.1f}% (keyword screen)")

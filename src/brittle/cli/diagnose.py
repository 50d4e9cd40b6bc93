"""`brittle diagnose …` and `brittle synth` (no logic here; see brittle.diagnose)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv
from brittle.cli.model_args import MODEL_ARGS_OPT
from brittle.cli.options import field_option, uses_config
from brittle.diagnose.run import DiagnoseConfig as _DC


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
             attack_start: str | None, n_prompts: int | None, device: str | None, dtype: str | None,
             batch_size: int | None, max_new_tokens: int | None, json_: bool,
             extra: dict[str, Any] | None = None) -> None:
        from brittle.diagnose.run import DiagnoseConfig, check_diagnostics, run_diagnose

        overrides = dict(
            diagnostics=check_diagnostics(which) if which else None, run_dir=run_dir, model=model,
            aligned_adapter=aligned_adapter, base_model=base_model,
            attacked=_parse_attacked(attacked or []) or None, attack_start=attack_start, n_prompts=n_prompts,
            device=device, dtype=dtype, batch_size=batch_size, max_new_tokens=max_new_tokens,
            **(extra or {}),
        )
        cfg = DiagnoseConfig.load(config, **overrides)
        res = run_diagnose(cfg)
        emit(res, json_, f"diagnostics {', '.join(cfg.diagnostics)} written to {cfg.run_dir}")

    def _command(name: str, which: list[str], doc: str) -> None:
        @diagnose.command(name, help=doc)
        @uses_config(_DC)
        def cmd(
            config: Path | None = typer.Option(None, "--config", "-c", help="DiagnoseConfig YAML."),
            run_dir: Path | None = field_option(_DC, "run_dir"),
            model: str | None = field_option(_DC, "model"),
            aligned_adapter: Path | None = field_option(_DC, "aligned_adapter"),
            base_model: str | None = field_option(_DC, "base_model"),
            attacked: list[str] | None = field_option(_DC, "attacked", metavar="LABEL=DIR"),
            attack_start: str | None = field_option(_DC, "attack_start"),
            n_prompts: int | None = field_option(_DC, "n_prompts"),
            device: str | None = field_option(_DC, "device"),
            dtype: str | None = field_option(_DC, "dtype"),
            batch_size: int | None = field_option(_DC, "batch_size"),
            max_new_tokens: int | None = field_option(_DC, "max_new_tokens"),
            model_args: str | None = MODEL_ARGS_OPT,
            json_: bool = JSON_OPT,
        ) -> None:
            _run(which, config, run_dir, model, aligned_adapter, base_model, attacked, attack_start, n_prompts,
                 device, dtype, batch_size, max_new_tokens, json_)

    _command("kl", ["kl"], "Per-token KL(aligned‖base) and KL(attacked‖aligned) per response position.")
    _command("prefill", ["prefill"], "Prefilling attack: ASR vs number of prefilled answer tokens.")

    @diagnose.command("direction", help=(
        "Refusal direction chosen as in Arditi et al.'s reference code (bypass, induce, KL < 0.1, last 20% "
        "of layers pruned) on held-out prompts; judged refusal rates with and without ablation / addition."))
    @uses_config(_DC)
    def direction_cmd(
        config: Path | None = typer.Option(None, "--config", "-c", help="DiagnoseConfig YAML."),
        run_dir: Path | None = field_option(_DC, "run_dir"),
        model: str | None = field_option(_DC, "model"),
        aligned_adapter: Path | None = field_option(_DC, "aligned_adapter"),
        attacked: list[str] | None = field_option(_DC, "attacked", metavar="LABEL=DIR"),
        attack_start: str | None = field_option(_DC, "attack_start"),
        direction_n_train: int | None = field_option(_DC, "direction_n_train", "--n-train"),
        direction_n_val: int | None = field_option(_DC, "direction_n_val", "--n-val"),
        direction_n_test: int | None = field_option(_DC, "direction_n_test", "--n-test"),
        direction_kl_threshold: float | None = field_option(_DC, "direction_kl_threshold", "--kl-threshold"),
        direction_induce_threshold: float | None = field_option(_DC, "direction_induce_threshold", "--induce-threshold"),
        direction_positions: int | None = field_option(_DC, "direction_positions", "--positions"),
        device: str | None = field_option(_DC, "device"),
        dtype: str | None = field_option(_DC, "dtype"),
        batch_size: int | None = field_option(_DC, "batch_size"),
        max_new_tokens: int | None = field_option(_DC, "max_new_tokens"),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        extra = {k: v for k, v in {
            "direction_n_train": direction_n_train, "direction_n_val": direction_n_val,
            "direction_n_test": direction_n_test, "direction_kl_threshold": direction_kl_threshold,
            "direction_induce_threshold": direction_induce_threshold,
            "direction_positions": direction_positions}.items() if v is not None}
        _run(["direction"], config, run_dir, model, aligned_adapter, None, attacked, attack_start, None,
             device, dtype, batch_size, max_new_tokens, json_, extra)

    _command("persona", ["persona"], "Refusal rate per persona statement and the spread.")
    _command("all", ["all"], "Every diagnostic (kl, prefill, direction, persona, synth).")

    @diagnose.command("run", help="Diagnostics named in --which (comma list) or the config.")
    @uses_config(_DC)
    def run_cmd(
        diagnostics: str | None = field_option(_DC, "diagnostics", "--which"),
        config: Path | None = typer.Option(None, "--config", "-c", help="DiagnoseConfig YAML."),
        run_dir: Path | None = field_option(_DC, "run_dir"),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        _run(split_csv(diagnostics), config, run_dir, None, None, None, [], None, None, None, None, None, None,
             json_)

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", "-o", help="Output JSONL of (instruction, answer) examples."),
        model: str = typer.Option("embedded:smollm2-135m", "--model"),
        adapter: Path | None = typer.Option(None, "--adapter", help="PEFT adapter dir."),
        n: int = typer.Option(64, "--n-instructions", min=1, help="Instructions to sample (before dedup)."),
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
        from brittle.models.identity import model_identity

        exs = synthesize(m, tok, cfg, fingerprint_parts=[model, str(adapter), model_identity(model)],
                         progress=True)
        write_examples_jsonl(exs, out)
        share = harmful_share([e.prompt for e in exs])
        res = {"out": str(out), "n_sampled": n, "n_unique": len(exs), **share}
        emit(res, json_, f"{len(exs)} unique examples -> {out}; harmful-looking "
                         f"{100 * share['harmful_share']:.1f}% (keyword screen)")

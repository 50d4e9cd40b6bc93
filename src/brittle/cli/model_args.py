"""The shared ``-M/--model-args key=value,...`` option (one definition for every command).

Its callback parses the text once (:func:`brittle.models.model_args.parse_model_args`) and
sets it for the running command, where ``load_model`` / ``make_backend`` pick it up.
Add it to a command as ``model_args: str | None = MODEL_ARGS_OPT``.
"""

from __future__ import annotations

import typer

from brittle.models.model_args import ModelArgs, parse_model_args, set_model_args


def _apply(ctx: typer.Context, value: str | None) -> str | None:
    """Parse and set for this command only (cleared when it ends); a bad value raises
    BrittleError: one line on stderr via ``brittle.cli.main``."""
    set_model_args(None)
    set_model_args(parse_model_args(value) if value else None)
    ctx.call_on_close(lambda: set_model_args(None))
    return value


MODEL_ARGS_OPT = typer.Option(
    None, "--model-args", "-M", callback=_apply, metavar="KEY=VALUE,...",
    help=("Model arguments for the loader / engine: " + ", ".join(ModelArgs.model_fields)
          + ". E.g. -M 'dtype=bfloat16,device_map=auto,max_memory=0:70GiB;cpu:200GiB' "
          "(vllm: tensor_parallel_size, gpu_memory_utilization; openai: max_concurrency, extra_body={...})."),
)

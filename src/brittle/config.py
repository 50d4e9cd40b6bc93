"""Pydantic configs: YAML in, validated, echoed into the run directory.

Each stage defines ``class XConfig(StageConfig)``; field descriptions double as CLI help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from brittle.errors import BrittleError


def _split_csv(v: Any) -> Any:
    """'a, b,c' -> ['a', 'b', 'c'] (CLI and YAML both accept a comma list or a list)."""
    if isinstance(v, (str, int)):
        return [s.strip() for s in str(v).split(",") if s.strip()]
    return v


CsvList = Annotated[list[str], BeforeValidator(_split_csv)]
CsvInts = Annotated[list[int], BeforeValidator(_split_csv)]


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path = Field(Path("runs/default"), description="Directory for this stage's outputs.")

    @field_validator("run_dir", check_fields=False)
    @classmethod
    def _usable_run_dir(cls, v: Path) -> Path:
        """A run dir that is a file, lies under a file or is not writable fails here, before
        any work starts (nothing is created yet)."""
        from brittle.paths import PathError, check_output_dir

        try:
            return check_output_dir(v)
        except PathError as e:
            raise ValueError(str(e)) from None

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> Self:
        """Config from an optional YAML file, with non-None ``overrides`` on top."""
        data: dict[str, Any] = {}
        if path is not None:
            from brittle.paths import PathError, check_input_file, os_reason

            try:  # a directory, FIFO (would block) or symlink loop is named, never opened
                check_input_file(path)
                data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except PathError as e:
                raise BrittleError(f"cannot read config: {e}") from None
            except OSError as e:
                raise BrittleError(f"{path}: cannot read config: {os_reason(e)}") from None
            except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise BrittleError(f"{path}: cannot read config: {first}") from None
            if not isinstance(data, dict):
                raise BrittleError(f"{path}: config must be a mapping")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_options(_where=f"{path}: " if path else "", **data)

    @classmethod
    def from_options(cls, _where: str = "", **options: Any) -> Self:
        """Validated config from keyword options (None is a value here, unlike in :meth:`load`,
        where None means "flag not given"); a bad value is one BrittleError line."""
        try:
            return cls(**options)
        except ValidationError as e:
            msgs = "; ".join(
                ".".join(map(str, x["loc"])) + ": " * bool(x["loc"]) + x["msg"].removeprefix("Value error, ")
                for x in e.errors())
            raise BrittleError(f"{_where}invalid {cls.__name__}: {msgs}") from None

    def echo(self, name: str | None = None) -> Path:
        """Write the resolved config as YAML into the run directory."""
        from brittle.paths import path_error
        from brittle.redaction import redact_secrets
        from brittle.store import ensure_dir

        ensure_dir(self.run_dir)
        path = self.run_dir / f"{name or type(self).__name__}.yaml"
        try:  # URL credentials in a spec are never echoed
            path.write_text(yaml.safe_dump(redact_secrets(self.model_dump(mode="json")), sort_keys=False))
        except OSError as e:
            raise path_error(path, e, "cannot write: ") from None
        return path

"""Pydantic configs: YAML in, validated, echoed into the run directory.

Each stage defines ``class XConfig(StageConfig)``; field descriptions double as CLI help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

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

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> Self:
        """Config from an optional YAML file, with non-None ``overrides`` on top."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as e:
                raise BrittleError(f"{path}: cannot read config: {e}") from None
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
            msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise BrittleError(f"{_where}invalid {cls.__name__}: {msgs}") from None

    def echo(self, name: str | None = None) -> Path:
        """Write the resolved config as YAML into the run directory."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / f"{name or type(self).__name__}.yaml"
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        return path

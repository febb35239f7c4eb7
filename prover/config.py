"""Settings, resolved once at the entry point and passed down explicitly.

Precedence, lowest first: defaults, an optional TOML file (`--config`), `PROVER_*` environment
variables (`PROVER_LEAN__WORKERS=4`, `PROVER_MODEL__NAME=...`: section and field joined by a
double underscore), then command-line flags. Only entry points call `load_settings`; libraries take
the sub-settings they need as arguments.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from search.types import PriorityScheme, SearchConfig

ENV_PREFIX = "PROVER_"
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_workers() -> int:
    """Lean processes per machine: cores - 1 (at least one), as every REPL pool recommends."""
    return max(1, (os.cpu_count() or 2) - 1)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeanSettings(_Section):
    """Which Lean backend to use and how to run it."""

    backend: Literal["repl", "dojo"] = "repl"
    project_dir: Path = REPO_ROOT / "miniF2F"
    """The Lake project theorems are checked in (its `lean-toolchain` pins Lean)."""
    repl_path: Path | None = None
    """The REPL binary; by default the one `prover setup` built under the project."""
    repl_command: list[str] | None = None
    """Full command that starts one REPL process, overriding `repl_path` (e.g. a stand-in in tests)."""
    workers: int = Field(default_factory=default_workers, ge=1)
    memory_limit_mb: int = Field(default=8192, ge=256)
    """Address-space limit of one Lean process."""
    max_requests_per_worker: int = Field(default=1000, ge=1)
    """Recycle a REPL after this many requests (REPLs degrade over long sessions)."""
    acquire_timeout_s: float = Field(default=120.0, gt=0)
    start_timeout_s: float = Field(default=600.0, gt=0)
    """Deadline for a REPL to start and elaborate a header such as `import Mathlib`."""
    restart_backoff_s: float = Field(default=1.0, ge=0)
    # LeanDojo backend
    dojo_cache_dir: Path | None = None
    dojo_timeout_s: float = Field(default=600.0, gt=0)
    dojo_cpu_limit: int = Field(default=1, ge=1)
    dojo_memory_limit: str = "16g"


class ModelSettings(_Section):
    """Which tactic generator to use and how it samples."""

    backend: Literal["hf", "vllm", "openai"] = "hf"
    name: str = "EleutherAI/llemma_7b"
    """A Hugging Face model name or a local directory (hf, vllm); the served model name (openai)."""
    prompt_format: str = "llemma"
    """`llemma`, `reprover`, or the path of a template file."""
    max_new_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    """0 means beam search (hf, vllm) or greedy-ish sampling where beams are not offered (openai)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    """0 disables top-k (Hugging Face would otherwise apply top_k=50)."""
    device: str = "auto"
    dtype: str = "auto"
    """`auto` is bf16 on a GPU and fp32 on the CPU."""
    batch_window_ms: float = Field(default=5.0, ge=0)
    """How long to wait for requests of other searches to merge into one model call."""
    max_batch_tokens: int = Field(default=65536, ge=1)
    """Cache slots per model call (hf): about 0.5 MB each for Llemma-7B, so 65536 needs ~32 GB beside the
    weights. Raise it on an 80 GB card to serve 32 searches x 32 samples in one call."""
    static_cache: bool = True
    """hf on a CUDA GPU: a fixed-shape KV cache and each decode step replayed as a CUDA graph (3.6x the
    eager rate at 8 searches x 32 samples on an H200; see bench/results). Falls back to eager decoding if
    graph capture fails. Ignored on the CPU."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"])
    api_key: str | None = None
    request_timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    seed: int = 0


class SearchSettings(_Section):
    """The budgets of one search (see `search.SearchConfig`)."""

    expansions: int = Field(default=100, ge=1)
    samples: int = Field(default=32, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)
    tactic_timeout_s: float = Field(default=5.0, gt=0)
    verify_timeout_s: float = Field(default=120.0, gt=0)
    priority: PriorityScheme = PriorityScheme.LLEMMA
    concurrent_tactics: int = Field(default=8, ge=1)

    def to_config(self, debug_invariants: bool = False) -> SearchConfig:
        return SearchConfig(
            max_expansions=self.expansions,
            num_samples=self.samples,
            wall_clock_s=self.timeout_s,
            tactic_timeout_s=self.tactic_timeout_s,
            verify_timeout_s=self.verify_timeout_s,
            priority=self.priority,
            max_concurrent_tactics=self.concurrent_tactics,
            debug_invariants=debug_invariants,
        )


class EvalSettings(_Section):
    """Batch evaluation (miniF2F)."""

    concurrency: int = Field(default=32, ge=1)
    """Searches in flight at once, sharing one generator and one Lean pool."""
    out_dir: Path = Path("runs/latest")
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray_workers: int = Field(default=2, ge=1)


class ProverSettings(_Section):
    """Everything an entry point resolves: one object, passed down by section."""

    lean: LeanSettings = Field(default_factory=LeanSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @field_validator("lean", "model", "search", "eval", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return {} if value is None else value


class SettingsError(ValueError):
    """The configuration is invalid; the message names the offending setting and its source."""


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        section, _, field = key[len(ENV_PREFIX) :].lower().partition("__")
        value: Any = raw
        if field in {"base_urls", "repl_command"}:
            value = [part for part in raw.split(",") if part] if field == "base_urls" else raw.split()
        values.setdefault(section, {})[field] = value
    return values


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> ProverSettings:
    """Resolve settings from defaults, a TOML file, `PROVER_*` variables and flag overrides.

    `overrides` is {section: {field: value}}; `None` values are ignored, so unset flags fall through.
    Raises `SettingsError` naming the setting at fault.
    """
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise SettingsError(f"config file {config_file} does not exist") from error
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"config file {config_file} is not valid TOML: {error}") from error
    data = _deep_merge(data, _from_environment(environ if environ is not None else {}))
    if overrides:
        cleaned = {
            section: {key: value for key, value in fields.items() if value is not None}
            for section, fields in overrides.items()
        }
        data = _deep_merge(data, cleaned)
    try:
        return ProverSettings.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from error

"""Settings, resolved once at the entry point and passed down explicitly.

Precedence, lowest first: defaults, an optional TOML file (`--config`), `PROVER_*` environment
variables, then command-line flags. A variable names its setting's path joined by double underscores
(`PROVER_LEAN__REPL__CRASH_RETRIES=3` is `[lean.repl] crash_retries = 3`, `PROVER_HOME` is the
top-level `home`); list-valued settings read a comma-separated list (`base_urls`), a shell-quoted
command (`command`, `lean_command`) or a JSON list. Only entry points call `load_settings`; it resolves
every path (relative to the current directory, `~` expanded) and the per-user defaults, so libraries
take the sub-settings they need as arguments and receive absolute paths.

The backend sections are the backends' own configs (`lean.repl` is `lean_env.repl.ReplConfig`,
`lean.dojo` is `lean_env.dojo.DojoConfig`), never copies of them.
"""

from __future__ import annotations

import json
import shlex
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lean_env.comparator import ComparatorSettings
from lean_env.dojo import DojoConfig
from lean_env.isabelle.checker import IsabelleConfig
from lean_env.repl.config import ReplConfig
from lean_env.source_policy import SourcePolicy
from prover.service.settings import ServiceSettings
from search.types import PriorityScheme, SearchConfig

if TYPE_CHECKING:
    from prover.informal.pipeline import InformalConfig

ENV_PREFIX = "PROVER_"
APP_NAME = "llemma-prover"
PROJECT_FOLDER = "miniF2F"
"""The default project's folder under the home (materialised there by `prover setup`)."""
DATA_FOLDER = "data"
"""Where, under the home, `prover setup` builds the REPL and checks out upstream data."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class LeanSettings(_Section):
    """Which Lean backend to use, which project it checks in, and each backend's own settings."""

    backend: Literal["repl", "dojo"] = "repl"
    """`repl` (leanprover-community/repl, the default) or `dojo` (LeanDojo-traced repositories)."""
    project_dir: Path | None = None
    """The Lake project theorems are checked in (its `lean-toolchain` pins Lean). None (the default):
    `<home>/miniF2F`, which `prover setup` materialises from the package's copy; `load_settings` fills it in."""
    data_dir: Path | None = None
    """Where `prover setup` builds the REPL and checks out the upstream data; None: `<home>/data`."""
    repl_path: Path | None = None
    """The REPL binary; by default the one `prover setup` built under `data_dir`."""
    repl: ReplConfig = Field(default_factory=ReplConfig)
    """The REPL pool (`[lean.repl]`). An empty `command` is derived from the project at the entry point."""
    dojo: DojoConfig = Field(default_factory=DojoConfig)
    """LeanDojo (`[lean.dojo]`)."""
    policy: SourcePolicy = Field(default_factory=SourcePolicy)
    """What headers may import, open and set, and the size limits of statements, headers and proofs
    (`[lean.policy]`); only the operator's settings can widen it, never a request."""
    comparator: ComparatorSettings = Field(default_factory=ComparatorSettings)
    """The trusted final judge (`[lean.comparator]`): `enabled` auto/on/off, tool paths, timeout, axioms."""
    isabelle: IsabelleConfig = Field(default_factory=IsabelleConfig)
    """The Isabelle server and checker (`[lean.isabelle]`): server address or how to start it, session, pool."""


class ModelSettings(_Section):
    """Which tactic generator to use and how it samples."""

    backend: Literal["hf", "vllm", "openai"] = "hf"
    name: str = "EleutherAI/llemma_7b"
    """A Hugging Face model name or a local directory (hf, vllm); the served model name (openai)."""
    prompt_format: str = "llemma"
    """`llemma`, `reprover`, or the path of a template file."""
    max_new_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    """0 means beam search of width `search.samples` (hf, vllm; openai where the server offers it, see
    `beam_search`), else greedy decoding: one candidate per expansion."""
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
    max_logprobs: int = Field(default=64, ge=1)
    """vllm: the engine's `max_logprobs`, the most log-probs one decoding step may return. Beam search of
    width W reads the top 2W tokens of every beam at each step, so keep it at least 2 x `search.samples`
    (64 covers the default 32; vLLM's own default of 20 would refuse beam widths above 10). Below 2W but
    at least W, beam search still runs, reading fewer candidates per beam; below W it is refused."""
    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"])
    api_key: str | None = None
    beam_search: Literal["auto", "on", "off"] = "auto"
    """openai, at temperature 0: `on` asks the server for beam search of width `search.samples`
    (vLLM's `use_beam_search` extension of `/v1/completions`; the server needs `--max-logprobs` of at
    least 2 x the width); `off` decodes greedily, one candidate per expansion; `auto` tries beams once
    and remembers whether the server offers them. hf and vllm always run beam search at temperature 0."""
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


def _pipeline_default(name: str) -> tuple[str, ...]:
    """A default list of the pipeline's, imported late (`prover.informal` imports the models, which import this)."""
    from prover.informal import pipeline

    value: tuple[str, ...] = getattr(pipeline, name)
    return value


class InformalSettings(_Section):
    """The informal-to-formal pipeline (`[informal]`), field for field `prover.informal.pipeline.InformalConfig`."""

    attempts: int = Field(default=1, ge=1)
    """Sketches per problem: attempt 0 is greedy, later ones sample; stop at the first verified one."""
    draft_when_missing: bool = True
    """When a problem has no informal proof, the model writes one from the informal statement first."""
    max_tokens: int = Field(default=1024, ge=1)
    """At most this many new tokens per sketch."""
    draft_max_tokens: int = Field(default=1024, ge=1)
    """At most this many new tokens per draft."""
    stop: tuple[str, ...] = ("\n\n\n",)
    """A sketch ends at any of these."""
    draft_stop: tuple[str, ...] = ("\n\n\n", "### Problem")
    """A draft ends at any of these."""
    temperature: float = Field(default=0.6, ge=0)
    """Temperature of the sampled attempts (attempt 0 is always greedy)."""
    top_p: float = Field(default=0.95, gt=0, le=1)
    """Nucleus sampling of the sampled attempts."""
    seed: int = Field(default=0, ge=0)
    """Attempt k > 0 samples with seed `seed + k`."""
    max_concurrent_gaps: int = Field(default=8, ge=1)
    """Gaps of one sketch worked on at once."""
    max_concurrent_sketches: int = Field(default=4, ge=1)
    """Attempts of one problem in flight at once."""
    max_concurrent_problems: int = Field(default=8, ge=1)
    """Problems in flight at once (`formalize_many`)."""
    hole_search_expansions: int = Field(default=32, ge=1)
    """Lean: expansion budget of the best-first search on one hole."""
    hole_search_wall_clock_s: float = Field(default=60.0, gt=0)
    """Lean: wall-clock budget of the best-first search on one hole."""
    automation: tuple[str, ...] = Field(default_factory=lambda: _pipeline_default("DEFAULT_AUTOMATION"))
    """Lean: the tactics tried in parallel on every hole before the search."""
    automation_timeout_s: float = Field(default=10.0, gt=0)
    """Lean: timeout of one automation tactic."""
    heuristics: tuple[str, ...] = Field(default_factory=lambda: _pipeline_default("DEFAULT_HEURISTICS"))
    """Isabelle: the replacements tried for every `sledgehammer`, preferred in this order."""
    heuristic_timeout_s: float = Field(default=30.0, gt=0)
    """Isabelle: timeout of checking the theory with one replacement."""
    sledgehammer: bool = True
    """Isabelle: run Sledgehammer on a gap no heuristic closes."""
    sledgehammer_timeout_s: float = Field(default=120.0, gt=0)
    """Isabelle: timeout of the theory check that runs Sledgehammer on one gap."""
    check_timeout_s: float = Field(default=120.0, gt=0)
    """Timeout of checking a sketch or a spliced variant."""
    verify_timeout_s: float = Field(default=300.0, gt=0)
    """Timeout of the final check of an assembled proof."""
    prompts: Path | None = None
    """A prompt file (`PromptSet.from_file`) replacing or extending the default few-shot prompts."""

    def to_config(self) -> InformalConfig:
        """The pipeline's config; `prompts` is not part of it (load it with `PromptSet.from_file`)."""
        from dataclasses import fields

        from prover.informal.pipeline import InformalConfig

        return InformalConfig(**{item.name: getattr(self, item.name) for item in fields(InformalConfig)})


class ProverSettings(_Section):
    """Everything an entry point resolves: one object, passed down by section."""

    home: Path | None = None
    """The per-user directory holding the default project and data (`PROVER_HOME`); None: `load_settings`
    fills in `$XDG_DATA_HOME/llemma-prover`, else `~/.local/share/llemma-prover`."""
    lean: LeanSettings = Field(default_factory=LeanSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    informal: InformalSettings = Field(default_factory=InformalSettings)
    """The informal-to-formal pipeline (`prover formalize`, `prover eval --mode informal`)."""
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    """`prover serve` and `prover worker` (`[service]`): address, job store, limits, tokens."""

    @field_validator("lean", "model", "search", "eval", "informal", "service", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return {} if value is None else value


class SettingsError(ValueError):
    """The configuration is invalid; the message names the offending setting and its source."""


def default_home(environ: Mapping[str, str]) -> Path:
    """`$XDG_DATA_HOME/llemma-prover`, else `~/.local/share/llemma-prover` (`PROVER_HOME` is the `home` setting)."""
    xdg = environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative value
        return Path(xdg) / APP_NAME
    user_home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return user_home / ".local" / "share" / APP_NAME


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `update` merged in, nested dicts merged key by key (neither argument is changed)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            cleaned[key] = _without_none(value)
        elif value is not None:
            cleaned[key] = value
    return cleaned


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_sequence(annotation: Any) -> bool:
    """Whether a field holds a list or tuple (possibly optional)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(arm) for arm in typing.get_args(annotation))
    return origin in (list, tuple)


_COMMA_SEPARATED = frozenset({("model", "base_urls")})
"""List settings read from a variable as comma-separated items; every other list is shell-quoted (a command)."""


def _env_value(path: tuple[str, ...], raw: str) -> Any:
    """The value of `PROVER_<path>` as the model should see it: lists split, everything else as text."""
    model: type[BaseModel] | None = ProverSettings
    annotation: Any = None
    for part in path:
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return raw  # not a setting: validation names it
        annotation = field.annotation
        model = _model_of(annotation)
    if not _is_sequence(annotation):
        return raw
    if raw.lstrip().startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            pass
    if path in _COMMA_SEPARATED:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return shlex.split(raw)


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = tuple(key[len(ENV_PREFIX) :].lower().split("__"))
        if len(path) == 1 and path[0] not in ProverSettings.model_fields:
            continue  # PROVER_SOMETHING without a section is not ours unless it names a top-level setting
        if any(not part for part in path):
            raise SettingsError(f"environment variable {key}: empty part in the setting's path")
        target = values
        for part in path[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise SettingsError(f"environment variable {key}: {part} is set both as a value and as a section")
            target = nested
        target[path[-1]] = _env_value(path, raw)
    return values


def _absolute(path: Path, cwd: Path) -> Path:
    expanded = path.expanduser()
    return expanded if expanded.is_absolute() else cwd / expanded


def _resolve_paths(model: BaseModel, cwd: Path) -> BaseModel:
    """`model` with every path field (at any depth) made absolute against `cwd`, `~` expanded."""
    update: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path):
            update[name] = _absolute(value, cwd)
        elif isinstance(value, BaseModel):
            update[name] = _resolve_paths(value, cwd)
    return model.model_copy(update=update) if update else model


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    cwd: Path | None = None,
) -> ProverSettings:
    """Resolve settings from defaults, a TOML file, `PROVER_*` variables and flag overrides.

    `overrides` is nested like the settings ({"lean": {"repl": {"workers": 2}}}); `None` values are
    ignored at any depth, so unset flags fall through. Every path in the result is absolute (relative
    ones are taken against `cwd`, default the current directory; `~` is expanded), and `home`,
    `lean.project_dir` and `lean.data_dir` are filled in. `environ` is the only environment read
    (`XDG_DATA_HOME` and `HOME` for the default home). Raises `SettingsError` naming the setting at fault.
    """
    environ = environ if environ is not None else {}
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).expanduser().read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise SettingsError(f"config file {config_file} does not exist") from error
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"config file {config_file} is not valid TOML: {error}") from error
    data = deep_merge(data, _from_environment(environ))
    if overrides:
        data = deep_merge(data, _without_none(overrides))
    try:
        settings = ProverSettings.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from error
    base = Path(cwd) if cwd is not None else Path.cwd()
    resolved = _resolve_paths(settings, base)
    assert isinstance(resolved, ProverSettings)
    home = resolved.home if resolved.home is not None else _absolute(default_home(environ), base)
    lean = resolved.lean.model_copy(
        update={
            "project_dir": resolved.lean.project_dir or home / PROJECT_FOLDER,
            "data_dir": resolved.lean.data_dir or home / DATA_FOLDER,
        }
    )
    return resolved.model_copy(update={"home": home, "lean": lean})

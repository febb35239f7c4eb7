"""Builds the Lean backend and the tactic generator named in the settings.

Each branch imports its backend lazily, so choosing `repl` never imports LeanDojo and `prover --help`
never imports torch. Missing pieces raise `MissingDependency` with what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lean_env.errors import MissingDependency
from lean_env.protocol import LeanEnv
from prover.config import LeanSettings, ModelSettings
from search.types import TacticGenerator

if TYPE_CHECKING:
    from lean_env.comparator import ComparatorJudge
    from lean_env.isabelle.checker import IsabelleConfig
    from prover.models.text import TextGenerator


def build_env(lean: LeanSettings, *, dojo_locations: Mapping[str, Any] | None = None) -> LeanEnv:
    """The Lean backend for `lean.backend`; raises `MissingDependency` if Lean or the REPL is absent.

    `dojo_locations` ({problem name: `lean_env.dojo.DojoLocation`}) says where each problem lives in
    a LeanDojo-traced repository; only the `dojo` backend reads it.

    The backends get their own sections of the settings (`lean.repl`, `lean.dojo`) as they are; only the
    REPL's command and working directory, resolved from the project here, are filled in.

    With the REPL backend and a final judge (`build_final_judge`), the env is a `JudgedEnv`: each proof
    the REPL re-check accepts is then judged by comparator, and its verdict says `judge="comparator"`.
    """
    if lean.backend == "repl":
        from lean_env.repl import ReplLeanEnv
        from prover.lean_setup import resolve_repl_command

        command, cwd = resolve_repl_command(lean)
        final = build_final_judge(lean)  # before starting any REPL: a missing judge with `on` fails fast
        repl = lean.repl.model_copy(update={"command": tuple(command), "cwd": cwd})
        env: LeanEnv = ReplLeanEnv(repl, policy=lean.policy)
        if final is None:
            return env
        from lean_env.judged import JudgedEnv

        return JudgedEnv(env, final)
    if lean.comparator.enabled == "on":
        raise MissingDependency(
            "the comparator judge for the dojo backend",
            "The comparator judge checks proofs in the REPL backend's Lake project: use --env repl, "
            "or set lean.comparator.enabled = 'auto' or 'off'.",
        )
    from lean_env.dojo import DojoLeanEnv

    return DojoLeanEnv(lean.dojo, locate=dict(dojo_locations or {}))


def build_final_judge(lean: LeanSettings, *, lake: Path | None = None) -> ComparatorJudge | None:
    """The comparator judge `lean.comparator` asks for, or None for the REPL judge alone.

    `enabled="off"`: None. `"auto"`: a judge when comparator, lean4export, landrun (and `lake`) are
    installed, else None. `"on"`: a judge, or `MissingDependency` naming what is absent and how to get it.
    `lake` defaults to the one on PATH or in elan's home.
    """
    from lean_env.comparator import ComparatorJudge, require_tools, resolve_tools
    from prover.lean_setup import find_tool

    settings = lean.comparator
    if settings.enabled == "off":
        return None
    if lean.data_dir is None or lean.project_dir is None:
        if settings.enabled == "auto":
            return None  # settings not resolved by `load_settings` (a library caller): nothing to look for
        raise ValueError("lean.data_dir / lean.project_dir are unset: settings must come from `load_settings`")
    tools = resolve_tools(settings, lean.data_dir)
    lake = lake if lake is not None else find_tool("lake")
    if settings.enabled == "auto" and (tools.missing() or lake is None):
        return None
    require_tools(tools)
    if lake is None:
        raise MissingDependency("Lean's build tool `lake` (needed by the comparator judge)", "Run `prover setup`.")
    return ComparatorJudge(settings, lean.project_dir, tools, lake=[str(lake)])


def build_generator(model: ModelSettings) -> TacticGenerator:
    """The tactic generator for `model.backend`; raises `MissingDependency` if its extra or model is absent."""
    from prover.models import build_generator as build

    return build(model)


def build_text_generator(model: ModelSettings) -> TextGenerator:
    """The text generator for `model.backend` (`prover.models.build_text_generator`); share one per run."""
    from prover.models import build_text_generator as build

    return build(model)


def build_isabelle(isabelle: IsabelleConfig) -> Any:
    """An `IsabelleChecker` for `lean.isabelle`, not yet started (`start()`/`close()` or `async with`)."""
    from lean_env.isabelle.checker import IsabelleChecker

    return IsabelleChecker(isabelle)


@dataclass(frozen=True, slots=True)
class Backends:
    """The builders an entry point makes its Lean backend and model with.

    The CLI takes one (`prover.cli.main.main(argv, backends=...)`), so a test or an embedding
    program hands it stand-ins instead of patching this module. The builders must be picklable
    (module-level functions or `functools.partial`s of them) for the Ray executor, which calls them
    inside its workers.
    """

    build_env: Callable[..., LeanEnv] = build_env
    """`(lean: LeanSettings, *, dojo_locations=None) -> LeanEnv`, like `build_env`."""
    build_generator: Callable[[ModelSettings], TacticGenerator] = build_generator
    """`(model: ModelSettings) -> TacticGenerator`, like `build_generator` (the search commands)."""
    build_text_generator: Callable[[ModelSettings], TextGenerator] = build_text_generator
    """`(model: ModelSettings) -> TextGenerator`: the informal pipeline's model; its tactic generator for Lean
    holes is `prover.models.build_generator(model, text=...)` over the same text generator."""
    build_isabelle: Callable[[IsabelleConfig], Any] = build_isabelle
    """`(isabelle: IsabelleConfig) -> checker` with `start()`, `close()`, `check_theory` and `verify_theory`
    (`lean_env.isabelle.checker.IsabelleChecker`)."""

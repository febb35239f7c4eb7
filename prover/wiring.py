"""Builds the Lean backend and the tactic generator named in the settings.

Each branch imports its backend lazily, so choosing `repl` never imports LeanDojo and `prover --help`
never imports torch. Missing pieces raise `MissingDependency` with what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lean_env.protocol import LeanEnv
from prover.config import LeanSettings, ModelSettings
from search.types import TacticGenerator


def build_env(lean: LeanSettings, *, dojo_locations: Mapping[str, Any] | None = None) -> LeanEnv:
    """The Lean backend for `lean.backend`; raises `MissingDependency` if Lean or the REPL is absent.

    `dojo_locations` ({problem name: `lean_env.dojo.DojoLocation`}) says where each problem lives in
    a LeanDojo-traced repository; only the `dojo` backend reads it.

    The backends get their own sections of the settings (`lean.repl`, `lean.dojo`) as they are; only the
    REPL's command and working directory, resolved from the project here, are filled in.
    """
    if lean.backend == "repl":
        from lean_env.repl import ReplLeanEnv
        from prover.lean_setup import resolve_repl_command

        command, cwd = resolve_repl_command(lean)
        return ReplLeanEnv(lean.repl.model_copy(update={"command": tuple(command), "cwd": cwd}))
    from lean_env.dojo import DojoLeanEnv

    return DojoLeanEnv(lean.dojo, locate=dict(dojo_locations or {}))


def build_generator(model: ModelSettings) -> TacticGenerator:
    """The tactic generator for `model.backend`; raises `MissingDependency` if its extra or model is absent."""
    from prover.models import build_generator as build

    return build(model)


@dataclass(frozen=True, slots=True)
class Backends:
    """The builders an entry point makes its Lean backend and model with.

    The CLI takes one (`prover.cli.main.main(argv, backends=...)`), so a test or an embedding
    program hands it stand-ins instead of patching this module. Both builders must be picklable
    (module-level functions or `functools.partial`s of them) for the Ray executor, which calls them
    inside its workers.
    """

    build_env: Callable[..., LeanEnv] = build_env
    """`(lean: LeanSettings, *, dojo_locations=None) -> LeanEnv`, like `build_env`."""
    build_generator: Callable[[ModelSettings], TacticGenerator] = build_generator

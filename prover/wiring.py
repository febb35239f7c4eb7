"""Builds the Lean backend and the tactic generator named in the settings.

Each branch imports its backend lazily, so choosing `repl` never imports LeanDojo and `prover --help`
never imports torch. Missing pieces raise `MissingDependency` with what to install.
"""

from __future__ import annotations

from lean_env.protocol import LeanEnv
from prover.config import LeanSettings, ModelSettings
from search.types import TacticGenerator


def build_env(lean: LeanSettings) -> LeanEnv:
    """The Lean backend for `lean.backend`; raises `MissingDependency` if Lean or the REPL is absent."""
    if lean.backend == "repl":
        from lean_env.repl import ReplConfig, ReplLeanEnv
        from prover.lean_setup import resolve_repl_command

        command, cwd = resolve_repl_command(lean)
        return ReplLeanEnv(
            ReplConfig(
                command=tuple(command),
                cwd=cwd,
                workers=lean.workers,
                memory_limit_mb=lean.memory_limit_mb,
                max_requests_per_worker=lean.max_requests_per_worker,
                acquire_timeout_s=lean.acquire_timeout_s,
                start_timeout_s=lean.start_timeout_s,
                restart_backoff_s=lean.restart_backoff_s,
            )
        )
    from lean_env.dojo import DojoConfig, DojoLeanEnv

    return DojoLeanEnv(
        DojoConfig(
            cache_dir=lean.dojo_cache_dir,
            timeout_s=lean.dojo_timeout_s,
            cpu_limit=lean.dojo_cpu_limit,
            memory_limit=lean.dojo_memory_limit,
        )
    )


def build_generator(model: ModelSettings) -> TacticGenerator:
    """The tactic generator for `model.backend`; raises `MissingDependency` if its extra or model is absent."""
    from prover.models import build_generator as build

    return build(model)

"""Picklable factories for Ray workers in tests: scripted env and generator, with injectable worker deaths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lean_env.types import Hole, InvalidStatement, Problem
from tests.evaluation.worlds import build_scripts, world
from tests.stand_ins.scripted import ScriptedEnv, ScriptedGenerator, ScriptedSession


class DyingEnv(ScriptedEnv):
    """Kills its whole worker process when asked to start certain theorems (a crashed Ray worker)."""

    def __init__(self, *args: object, die_always: Sequence[str], die_once: Sequence[str], marker_dir: Path, **kw):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._die_always = set(die_always)
        self._die_once = set(die_once)
        self._marker_dir = marker_dir

    async def start(self, theorem: Problem, *, hole: Hole | None = None) -> ScriptedSession | InvalidStatement:
        if theorem.name in self._die_always:
            os._exit(1)
        if theorem.name in self._die_once:
            try:
                fd = os.open(self._marker_dir / f"died-{theorem.name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)
        return await super().start(theorem)


def make_env(
    names: Sequence[str],
    provable: Sequence[str],
    marker_dir: str,
    die_always: Sequence[str] = (),
    die_once: Sequence[str] = (),
    tactic_latency: float = 0.0,
) -> DyingEnv:
    scripts = build_scripts(provable, names, tactic_latency=tactic_latency)
    return DyingEnv(
        scripts[names[0]][1],
        scripts[names[0]][0],
        scripts=scripts,
        die_always=die_always,
        die_once=die_once,
        marker_dir=Path(marker_dir),
    )


def make_generator(
    names: Sequence[str], provable: Sequence[str], marker_dir: str | None = None, latency: float = 0.0
) -> ScriptedGenerator:
    """The scripted generator; leaves a `generator-<pid>` file in `marker_dir` so tests can count builds."""
    if marker_dir is not None:
        (Path(marker_dir) / f"generator-{os.getpid()}").touch()
    _, generator = world(provable, names, generator_latency=latency)
    return generator

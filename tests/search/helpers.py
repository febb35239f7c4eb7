"""Shared helpers for the search tests: run one search over scripted stand-ins, with a hang guard."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lean_env.types import Hole, Theorem
from search import BestFirstSearch, ExpansionDone, ProofCheck, SearchConfig, SearchResult
from tests.stand_ins.scripted import (
    Script,
    ScriptedEnv,
    ScriptedGenerator,
    make_theorem,
    uniform_candidates,
)

GUARD_S = 10.0
"""No single search in these tests may take longer; a hang fails the test instead of the suite."""


class Recorder:
    """An event listener that keeps every event and checks the tree's invariants after each expansion."""

    def __init__(self) -> None:
        self.all: list[object] = []
        self.search: BestFirstSearch | None = None

    def __call__(self, event: object) -> None:
        self.all.append(event)
        if isinstance(event, ExpansionDone) and self.search is not None and self.search.tree is not None:
            self.search.tree.check_invariants()

    @property
    def events(self) -> list[ExpansionDone]:
        """The `ExpansionDone` events, in order."""
        return [event for event in self.all if isinstance(event, ExpansionDone)]

    @property
    def expanded(self) -> list[str]:
        return [event.state for event in self.events]


@dataclasses.dataclass
class Run:
    result: SearchResult
    search: BestFirstSearch
    env: ScriptedEnv
    generator: ScriptedGenerator
    recorder: Recorder


def config(**overrides: Any) -> SearchConfig:
    """A test config: invariants checked after every expansion, small budgets, short timeouts."""
    values: dict[str, Any] = {
        "max_expansions": 50,
        "num_samples": 32,
        "wall_clock_s": 5.0,
        "tactic_timeout_s": 1.0,
        "verify_timeout_s": 5.0,
        "debug_invariants": True,
    }
    values.update(overrides)
    return SearchConfig(**values)


async def run_search(
    script: Script,
    *,
    table: Mapping[str, Sequence[tuple[str, float, int]]] | None = None,
    cfg: SearchConfig | None = None,
    env: ScriptedEnv | None = None,
    generator: ScriptedGenerator | None = None,
    theorem: Theorem | None = None,
    initial: str = "root",
    latency: Callable[[str, str], float] | None = None,
    hole: Hole | None = None,
    verify: ProofCheck | None = None,
) -> Run:
    env = env if env is not None else ScriptedEnv(script, initial, latency=latency)
    generator = (
        generator
        if generator is not None
        else ScriptedGenerator(table if table is not None else uniform_candidates(script))
    )
    recorder = Recorder()
    search = BestFirstSearch(
        theorem or make_theorem(), env, generator, cfg or config(), hole=hole, verify=verify, events=recorder
    )
    recorder.search = search
    async with asyncio.timeout(GUARD_S):
        result = await search.run()
    if search.tree is not None:
        search.tree.check_invariants()
    return Run(result, search, env, generator, recorder)


def comparable(result: SearchResult) -> dict[str, Any]:
    """A result's record without the timing fields, for determinism checks.

    `tactics_cancelled` is timing too: how many tactics were still running when a proof was found.
    """
    record = result.to_dict()
    for key in ("model_seconds", "env_seconds", "verify_seconds", "wall_seconds", "tactics_cancelled"):
        record["stats"].pop(key)
    return record

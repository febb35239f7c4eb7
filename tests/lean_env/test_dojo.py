"""The LeanDojo adapter, driven with LeanDojo's real result and exception classes; only `Dojo` is a stand-in.

`ScriptedDojo` behaves like LeanDojo's `Dojo` where the adapter depends on it: `__enter__` returns
(dojo, initial TacticState), `run_tac` answers with LeanDojo's own result objects, state ids belong
to one Dojo process (a state from an earlier Dojo is unknown to a new one), and after a tactic
timeout every later tactic on that Dojo times out too (LeanDojo issue 218).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from lean_env.dojo import (
    DojoConfig,
    DojoLeanEnv,
    DojoLocation,
    DojoLocationError,
    import_lean_dojo,
    locate_theorem,
    parse_lean_output,
    theorem_from_location,
)
from lean_env.errors import BackendCrashed, BackendStartError, HoleUnavailable, MissingDependency
from lean_env.lean_syntax import LEAN
from lean_env.protocol import LeanEnv, ProofSession
from lean_env.types import (
    Hole,
    InvalidStatement,
    Position,
    Progress,
    ProofClosed,
    ProofState,
    Severity,
    TacticError,
    TacticErrorKind,
    Theorem,
    VerifyStatus,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ld(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real lean_dojo module, imported the way the adapter imports it (settings first)."""
    cache = tmp_path_factory.mktemp("lean_dojo_cache")
    return import_lean_dojo(DojoConfig(cache_dir=cache, disable_remote_cache=True, memory_limit="4g"))


INITIAL = "a b : ℕ\nh : a = b\n⊢ b = a"
AFTER_SUBST = "a : ℕ\n⊢ a = a"
TWO_GOALS = "case left\n⊢ True\n\ncase right\n⊢ 1 = 1"
LOCATION = DojoLocation("https://github.com/example/tiny", "0123456789abcdef0123456789abcdef01234567", "Tiny.lean", "t")
THEOREM = Theorem(
    name="t",
    header="import Tiny\n\n",
    formal_statement="theorem t (a b : ℕ) (h : a = b) : b = a := by",
)

# pp -> tactic -> effect: ("state", pp) | ("finished",) | ("error", text) | ("sorry",) | ("timeout",) | ("crash", n)
SCRIPT: dict[str, dict[str, tuple[Any, ...]]] = {
    INITIAL: {
        "subst h": ("state", AFTER_SUBST),
        "exact h.symm": ("finished",),
        "exact h": ("error", "type mismatch\n  h\nhas type\n  a = b"),
        "simp_all?": ("sorry",),
        "slow_tactic": ("timeout",),
        "flaky": ("crash", 1),
        "deadly": ("crash", 99),
        "constructor_like": ("state", TWO_GOALS),
    },
    AFTER_SUBST: {"rfl": ("finished",), "slow_tactic": ("timeout",)},
}


@dataclass
class World:
    """What every Dojo the factory built saw, so tests can check the adapter's conduct."""

    opened: int = 0
    exited: int = 0
    runs: list[tuple[int, str]] = field(default_factory=list)
    timeouts_seen: list[float] = field(default_factory=list)
    crashes: dict[str, int] = field(default_factory=dict)
    fail_enter: Exception | None = None
    spawn_on_enter: bool = False
    spawned: list[int] = field(default_factory=list)


class FakeProc:
    def __init__(self, pid: int = 0) -> None:
        self.pid = pid
        self.timeout: float = 30


class ScriptedDojo:
    def __init__(self, ld: Any, world: World, location: DojoLocation, timeout: float) -> None:
        self.ld = ld
        self.world = world
        self.number = 0
        self.issued: set[int] = set()
        self.next_id = 0
        self.poisoned = False
        self.proc = FakeProc()

    def _state(self, pp: str) -> Any:
        self.next_id += 1
        self.issued.add(self.next_id)
        return self.ld.TacticState(pp, self.next_id)

    def __enter__(self) -> tuple[Any, Any]:
        world = self.world
        if world.spawn_on_enter:
            # Like `lake env lean`: a process leading its own session, with a child of its own.
            child = subprocess.Popen(["sh", "-c", "sleep 120 & sleep 120"], start_new_session=True)
            self.proc = FakeProc(child.pid)
            world.spawned.append(child.pid)
            time.sleep(0.2)
            world.spawned.extend(p.pid for p in psutil.Process(child.pid).children(recursive=True))
        if world.fail_enter is not None:
            raise world.fail_enter
        world.opened += 1
        self.number = world.opened
        return self, self._state(INITIAL)

    def __exit__(self, *exc: object) -> None:
        self.world.exited += 1

    def run_tac(self, state: Any, tactic: str) -> Any:
        world = self.world
        world.runs.append((self.number, tactic))
        world.timeouts_seen.append(self.proc.timeout)
        if state.id not in self.issued:
            raise RuntimeError(f"unknown state id {state.id} in Dojo {self.number}")
        if self.poisoned:
            raise self.ld.DojoTacticTimeoutError()
        effect = SCRIPT.get(state.pp, {}).get(tactic, ("error", f"unknown tactic {tactic}"))
        if effect[0] == "state":
            return self._state(effect[1])
        if effect[0] == "finished":
            return self.ld.ProofFinished(self.next_id + 1, "")
        if effect[0] == "error":
            return self.ld.LeanError(effect[1])
        if effect[0] == "sorry":
            return self.ld.ProofGivenUp()
        if effect[0] == "timeout":
            self.poisoned = True
            raise self.ld.DojoTacticTimeoutError()
        if effect[0] == "crash":
            seen = world.crashes.get(tactic, 0)
            if seen < effect[1]:
                world.crashes[tactic] = seen + 1
                raise self.ld.DojoCrashError("Unexpected EOF")
            return self._state(AFTER_SUBST)
        raise AssertionError(effect)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def env(ld: Any, world: World) -> DojoLeanEnv:
    return DojoLeanEnv(
        DojoConfig(timeout_s=5, crash_restarts=1, max_dojos=4),
        locate={"t": LOCATION},
        dojo_factory=lambda location, timeout: ScriptedDojo(ld, world, location, timeout),
    )


async def test_session_speaks_the_protocol(env: DojoLeanEnv) -> None:
    session = await env.start(THEOREM)
    try:
        assert isinstance(env, LeanEnv) and isinstance(session, ProofSession)
        assert session.initial_state.pp == INITIAL
        assert session.theorem is THEOREM
    finally:
        await session.close()
        await session.close()


async def test_results_map_onto_outcomes(env: DojoLeanEnv) -> None:
    session = await env.start(THEOREM)
    root = session.initial_state
    progress = await session.run_tactic(root, "subst h", 3)
    assert isinstance(progress, Progress) and progress.state.pp == AFTER_SUBST
    assert isinstance(await session.run_tactic(root, "exact h.symm", 3), ProofClosed)
    error = await session.run_tactic(root, "exact h", 3)
    assert (
        isinstance(error, TacticError) and error.kind is TacticErrorKind.LEAN_ERROR and "type mismatch" in error.message
    )
    given_up = await session.run_tactic(root, "simp_all?", 3)
    assert isinstance(given_up, TacticError) and given_up.kind is TacticErrorKind.USED_SORRY
    two = await session.run_tactic(root, "constructor_like", 3)
    assert isinstance(two, Progress) and two.state.num_goals == 2
    assert isinstance(await session.run_tactic(progress.state, "rfl", 3), ProofClosed)
    await env.close()


async def test_guarded_tactic_never_reaches_lean(env: DojoLeanEnv, world: World) -> None:
    session = await env.start(THEOREM)
    outcome = await session.run_tactic(session.initial_state, "native_decide", 3)
    assert isinstance(outcome, TacticError) and outcome.kind is TacticErrorKind.UNSAFE
    assert world.runs == []
    await env.close()


async def test_each_tactic_gets_its_own_timeout(env: DojoLeanEnv, world: World) -> None:
    session = await env.start(THEOREM)
    await session.run_tactic(session.initial_state, "exact h", 2.5)
    await session.run_tactic(session.initial_state, "exact h", 7)
    assert world.timeouts_seen == [2.5, 7]
    await env.close()


async def test_timeout_discards_the_dojo_and_the_next_tactic_replays_the_path(env: DojoLeanEnv, world: World) -> None:
    session = await env.start(THEOREM)
    after = await session.run_tactic(session.initial_state, "subst h", 3)
    assert isinstance(after, Progress)
    timed_out = await session.run_tactic(after.state, "slow_tactic", 3)
    assert isinstance(timed_out, TacticError) and timed_out.kind is TacticErrorKind.TIMEOUT
    assert world.exited == 1, "the Dojo that timed out must be exited, not reused"
    closed = await session.run_tactic(after.state, "rfl", 3)
    assert isinstance(closed, ProofClosed)
    assert world.opened == 2
    # The new Dojo replayed `subst h` before running `rfl` on the replayed state.
    assert world.runs[-2:] == [(2, "subst h"), (2, "rfl")]
    # The root's state works in the new Dojo too, without another replay.
    assert isinstance(await session.run_tactic(session.initial_state, "exact h.symm", 3), ProofClosed)
    assert world.opened == 2
    await env.close()
    assert world.exited == 2


async def test_crash_restarts_and_replays_then_gives_up(env: DojoLeanEnv, world: World) -> None:
    session = await env.start(THEOREM)
    recovered = await session.run_tactic(session.initial_state, "flaky", 3)
    assert isinstance(recovered, Progress)
    assert world.opened == 2
    with pytest.raises(BackendCrashed, match="crashed 2 times"):
        await session.run_tactic(session.initial_state, "deadly", 3)
    await env.close()


async def test_state_of_another_session_is_refused(env: DojoLeanEnv) -> None:
    first = await env.start(THEOREM)
    second = await env.start(THEOREM)
    with pytest.raises(ValueError, match="this session"):
        await second.run_tactic(first.initial_state, "subst h", 3)
    await env.close()


async def test_theorem_without_location_cannot_start(env: DojoLeanEnv) -> None:
    with pytest.raises(BackendStartError, match="no LeanDojo location"):
        await env.start(Theorem(name="elsewhere", header="", formal_statement="theorem elsewhere : True := by"))


async def test_locations_come_from_a_function_too(ld: Any, world: World) -> None:
    asked: list[str] = []

    def locate(problem: Theorem) -> DojoLocation:
        asked.append(problem.name)
        return LOCATION

    env = DojoLeanEnv(
        DojoConfig(), locate=locate, dojo_factory=lambda location, timeout: ScriptedDojo(ld, world, location, timeout)
    )
    session = await env.start(THEOREM)
    assert isinstance(session, ProofSession) and session.initial_state.pp == INITIAL
    assert asked == ["t"] and env.location(THEOREM) == LOCATION
    await env.close()


async def test_a_refused_statement_is_a_value_and_opens_no_dojo(env: DojoLeanEnv, world: World) -> None:
    smuggled = Theorem(name="t", header="", formal_statement="theorem t : (sorry : Prop) := by")
    invalid = await env.start(smuggled)
    assert isinstance(invalid, InvalidStatement) and invalid.problem_name == "t" and "sorry" in invalid.message
    assert world.opened == 0


async def test_sessions_on_holes_are_unavailable(env: DojoLeanEnv) -> None:
    hole = Hole(0, "⊢ True", ProofState.from_goals(["⊢ True"]), Position(1, 0), Position(1, 5))
    with pytest.raises(HoleUnavailable, match="REPL backend"):
        await env.start(THEOREM, hole=hole)
    assert env.syntax is LEAN


async def test_init_error_kills_lingering_processes(ld: Any, world: World) -> None:
    world.spawn_on_enter = True
    world.fail_enter = ld.DojoInitError("Unexpected EOF")
    env = DojoLeanEnv(
        DojoConfig(),
        locate={"t": LOCATION},
        dojo_factory=lambda location, timeout: ScriptedDojo(ld, world, location, timeout),
    )
    with pytest.raises(BackendStartError, match="could not start"):
        await env.start(THEOREM)
    assert len(world.spawned) >= 2
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in world.spawned):
        await asyncio.sleep(0.05)
    assert not any(_alive(pid) for pid in world.spawned)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_importing_the_module_neither_imports_lean_dojo_nor_sets_its_variables() -> None:
    code = "import os, sys, lean_env.dojo; print(json.dumps(['lean_dojo' in sys.modules, 'CACHE_DIR' in os.environ]))"
    env = {k: v for k, v in os.environ.items() if k not in ("TACTIC_MEMORY_LIMIT", "CACHE_DIR")}
    done = subprocess.run(
        [sys.executable, "-c", "import json; " + code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, False]


def test_settings_are_in_place_before_lean_dojo_reads_them(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from lean_env.dojo import DojoConfig, import_lean_dojo
        import_lean_dojo(DojoConfig(cache_dir=Path({str(tmp_path / "cache")!r}), cpu_limit=3, memory_limit="5g",
                                    disable_remote_cache=True))
        import lean_dojo.constants as c
        print(json.dumps([str(c.CACHE_DIR), c.TACTIC_CPU_LIMIT, c.TACTIC_MEMORY_LIMIT, c.DISABLE_REMOTE_CACHE]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CACHE_DIR", "TACTIC_CPU_LIMIT", "TACTIC_MEMORY_LIMIT")}
    env.pop("DISABLE_REMOTE_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [str(tmp_path / "cache"), 3, "5g", True]


def test_config_refuses_a_memory_limit_lean_dojo_would_assert_on() -> None:
    with pytest.raises(ValueError, match="memory_limit"):
        DojoConfig(memory_limit="16GB")


# --- reading theorems and checking whole files ----------------------------------------------------

TRACED_FILE = """/-
Licence block, with a `theorem fake : False := sorry` inside a comment.
-/
import Tiny.Imports

open Nat

theorem warmup (n : ℕ) : n + 0 = n := by sorry
#align warmup warmup

/- a note before the theorem -/
theorem t (a b : ℕ) (h : a = b) :
    b = a :=
  by sorry
#align t t

theorem term_style (p : Prop) (hp : p) : p := sorry
"""


def test_locate_theorem_splits_header_and_statement() -> None:
    header, statement = locate_theorem(TRACED_FILE, "t")
    assert header.endswith("/- a note before the theorem -/\n")
    assert "theorem warmup" in header
    assert statement == "theorem t (a b : ℕ) (h : a = b) :\n    b = a := by"
    assert locate_theorem(TRACED_FILE, "Tiny.term_style")[1] == "theorem term_style (p : Prop) (hp : p) : p := by"
    with pytest.raises(DojoLocationError, match="no theorem named fake"):
        locate_theorem(TRACED_FILE, "fake")


def _git_repo(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Tiny.lean").write_text(TRACED_FILE, encoding="utf-8")
    run = {"cwd": path, "check": True, "capture_output": True, "timeout": 30}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "Tiny.lean"], **run)  # type: ignore[call-overload]
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"],
        **run,  # type: ignore[call-overload]
    )
    return subprocess.run(["git", "rev-parse", "HEAD"], text=True, **run).stdout.strip()  # type: ignore[call-overload]


def test_theorem_from_a_checkout_under_the_data_folder(tmp_path: Path) -> None:
    commit = _git_repo(tmp_path / "data" / "tiny")
    location = DojoLocation("https://github.com/example/tiny", commit[:7], "Tiny.lean", "t")
    theorem = theorem_from_location(location, source_roots=[tmp_path / "data"], cache_dir=tmp_path / "none")
    assert theorem.formal_statement == "theorem t (a b : ℕ) (h : a = b) :\n    b = a := by"
    assert theorem.header == locate_theorem(TRACED_FILE, "t")[0]
    assert theorem.upstream == f"https://github.com/example/tiny@{commit[:7]}:Tiny.lean"
    same = theorem_from_location(
        location, "theorem t (a b : ℕ) (h : a = b) : b = a := by", source_roots=[tmp_path / "data"]
    )
    assert same == theorem, "a statement equal up to whitespace keeps the file's own text"
    with pytest.raises(DojoLocationError, match="differs"):
        theorem_from_location(
            location, "theorem t (a b : ℕ) (h : a = b) : a = a := by", source_roots=[tmp_path / "data"]
        )
    wrong_commit = DojoLocation(location.repo_url, "f" * 40, "Tiny.lean", "t")
    with pytest.raises(MissingDependency, match="prover setup"):
        theorem_from_location(wrong_commit, source_roots=[tmp_path / "data"], cache_dir=tmp_path / "none")


def test_theorem_from_the_lean_dojo_cache_layout(tmp_path: Path) -> None:
    traced = tmp_path / "cache" / f"example-tiny-{LOCATION.commit}" / "tiny"
    traced.mkdir(parents=True)
    (traced / "Tiny.lean").write_text(TRACED_FILE, encoding="utf-8")
    theorem = theorem_from_location(LOCATION, source_roots=[], cache_dir=tmp_path / "cache")
    assert theorem.formal_statement.startswith("theorem t (a b")


def test_statement_given_without_a_file_is_guarded(tmp_path: Path) -> None:
    theorem = theorem_from_location(
        LOCATION, "theorem t (a b : ℕ) (h : a = b) : b = a :=", source_roots=[], cache_dir=tmp_path
    )
    assert theorem.formal_statement.endswith(":= by") and theorem.header == ""
    with pytest.raises(DojoLocationError, match="sorry"):
        theorem_from_location(LOCATION, "theorem t : (sorry : Prop) := by", source_roots=[], cache_dir=tmp_path)


def test_parse_lean_output_reads_both_info_styles() -> None:
    output = (
        "Tiny/check.lean:9:0: warning: declaration uses 'sorry'\n"
        "Tiny/check.lean:14:2: error: unsolved goals\na b : ℕ\n⊢ b = a\n"
        "'t' depends on axioms: [propext,\n Quot.sound]\n"
        "Tiny/check.lean:20:0: info: 'u' does not depend on any axioms\n"
        "error(lean.unknownIdentifier): unknown identifier 'x'\n"
    )
    messages = parse_lean_output(output)
    assert [(m.severity, m.line) for m in messages] == [
        (Severity.WARNING, 9),
        (Severity.ERROR, 14),
        (Severity.INFO, 0),
        (Severity.INFO, 20),
        (Severity.ERROR, 0),
    ]
    assert messages[1].text == "unsolved goals\na b : ℕ\n⊢ b = a"
    assert messages[2].text == "'t' depends on axioms: [propext,\n Quot.sound]"


# A stand-in for `lake env lean FILE`: prints what Lean prints, decided by the proof text.
FAKE_LEAN = r"""
import re, sys, time, os
path = sys.argv[-1]
text = open(path, encoding="utf-8").read()
print(f"{os.path.dirname(path)}|{sys.argv[1]}|{sys.argv[2]}", file=open(os.environ["FAKE_LEAN_LOG"], "a"))
lines = text.splitlines()
for number, line in enumerate(lines, 1):
    if "by sorry" in line:
        print(f"{path}:{number}:0: warning: declaration uses 'sorry'")
if "slow" in text:
    time.sleep(60)
if "exact h.symm" in text:
    print("'t' depends on axioms: [propext]")
elif "exact helper" in text:
    print(f"{path}:{len(lines)}:0: info: 't' depends on axioms: [propext, sorryAx]")
else:
    print(f"{path}:16:2: error: type mismatch")
    sys.exit(1)
"""


@pytest.fixture
def traced_env(tmp_path: Path, ld: Any, world: World, monkeypatch: pytest.MonkeyPatch) -> tuple[DojoLeanEnv, Path]:
    repo = tmp_path / "traced" / "tiny"
    (repo / "Tiny").mkdir(parents=True)
    (repo / "Tiny" / "Main.lean").write_text(TRACED_FILE, encoding="utf-8")
    script = tmp_path / "fake_lean.py"
    script.write_text(FAKE_LEAN, encoding="utf-8")
    log = tmp_path / "lean.log"
    monkeypatch.setenv("FAKE_LEAN_LOG", str(log))
    env = DojoLeanEnv(
        DojoConfig(lean_command=(sys.executable, str(script)), cpu_limit=2, memory_limit="3g"),
        locate={"t": TRACED_LOCATION},
        dojo_factory=lambda location, timeout: ScriptedDojo(ld, world, location, timeout),
        traced_repo=lambda location: repo,
    )
    return env, log


TRACED_LOCATION = DojoLocation(LOCATION.repo_url, LOCATION.commit, "Tiny/Main.lean", "t")
TRACED_THEOREM = Theorem(
    name="t",
    header="",
    formal_statement="theorem t (a b : ℕ) (h : a = b) : b = a := by",
)


async def test_verify_accepts_a_proof_lean_accepts(traced_env: tuple[DojoLeanEnv, Path]) -> None:
    env, log = traced_env
    verdict = await env.verify(TRACED_THEOREM, "by exact h.symm", 30)
    assert verdict.ok, verdict.reason
    assert verdict.axioms == ("propext",)
    # The header is the traced file above the theorem: its `sorry` warning is not ours.
    assert "theorem warmup" in verdict.checked_text and verdict.checked_text.rstrip().endswith("#print axioms t")
    folder, threads, memory = log.read_text().splitlines()[-1].split("|")
    assert folder == "Tiny" and threads == "--threads=2" and memory == "--memory=3072"
    assert [p.name for p in (log.parent / "traced" / "tiny" / "Tiny").iterdir()] == ["Main.lean"]


async def test_verify_rejects_what_lean_or_the_guard_rejects(traced_env: tuple[DojoLeanEnv, Path]) -> None:
    env, log = traced_env
    wrong = await env.verify(TRACED_THEOREM, "by exact h", 30)
    assert wrong.status is VerifyStatus.LEAN_ERROR and "type mismatch" in wrong.reason
    borrowed = await env.verify(TRACED_THEOREM, "by exact helper", 30)
    assert borrowed.status is VerifyStatus.SORRY
    guarded = await env.verify(TRACED_THEOREM, "by native_decide", 30)
    assert guarded.status is VerifyStatus.GUARD_REJECTED
    assert len(log.read_text().splitlines()) == 2, "the guard refuses before Lean runs"


async def test_verify_rejects_a_statement_that_is_not_the_files(traced_env: tuple[DojoLeanEnv, Path]) -> None:
    env, _ = traced_env
    changed = Theorem(name="t", header="", formal_statement="theorem t (a b : ℕ) (h : a = b) : a = a := by")
    verdict = await env.verify(changed, "by exact h.symm", 30)
    assert verdict.status is VerifyStatus.STATEMENT_CHANGED


async def test_verify_timeout_kills_lean(traced_env: tuple[DojoLeanEnv, Path]) -> None:
    env, _ = traced_env
    started = time.monotonic()
    verdict = await env.verify(TRACED_THEOREM, "by\n  slow\n  exact h.symm", 1.5)
    assert verdict.status is VerifyStatus.TIMEOUT
    assert time.monotonic() - started < 10


async def test_verify_without_lake_names_what_is_missing(ld: Any, world: World, tmp_path: Path) -> None:
    repo = tmp_path / "tiny"
    (repo / "Tiny").mkdir(parents=True)
    (repo / "Tiny" / "Main.lean").write_text(TRACED_FILE, encoding="utf-8")
    env = DojoLeanEnv(
        DojoConfig(lean_command=(str(tmp_path / "no-such-lake"), "env", "lean")),
        locate={"t": TRACED_LOCATION},
        traced_repo=lambda _: repo,
    )
    with pytest.raises(MissingDependency, match="prover setup"):
        await env.verify(TRACED_THEOREM, "by exact h.symm", 30)


async def test_check_runs_lean_in_the_traced_repository_and_lists_the_sorries(
    traced_env: tuple[DojoLeanEnv, Path],
) -> None:
    env, log = traced_env
    text = (
        "import Tiny.Imports\n\n"
        "theorem t (a b : ℕ) (h : a = b) : b = a := by\n"
        "  -- a sorry in a comment is no hole\n"
        "  have : a = a := by sorry\n"
        "  exact h.symm\n\n"
        "theorem u : 1 = 1 := sorry\n"
    )
    result = await env.check(text, 30)
    assert [(hole.index, hole.start, hole.end) for hole in result.holes] == [
        (0, Position(5, 21), Position(5, 26)),
        (1, Position(8, 21), Position(8, 26)),
    ]
    assert all(hole.goal == "" and hole.state.handle is None for hole in result.holes)
    # The stand-in Lean warns on the `by sorry` line; positions are the text's own.
    assert (result.messages[0].severity, result.messages[0].line) == (Severity.WARNING, 5)
    assert result.ok
    folder, _, _ = log.read_text().splitlines()[-1].split("|")
    assert folder == "", "the file is written at the root of the traced repository"
    with pytest.raises(HoleUnavailable):
        await env.start(TRACED_THEOREM, hole=result.holes[0])
    failing = await env.check("theorem v : 1 = 2 := by\n  exact h\n", 30)
    assert not failing.ok and "type mismatch" in failing.errors[0].text and failing.holes == ()


async def test_check_needs_a_repository(ld: Any, world: World) -> None:
    env = DojoLeanEnv(DojoConfig(), dojo_factory=lambda location, timeout: ScriptedDojo(ld, world, location, timeout))
    with pytest.raises(BackendStartError, match="check_in"):
        await env.check("theorem u : 1 = 1 := sorry\n", 30)


# --- lean-dojo 4.20 behaviour the adapter works around ---------------------------------------------

FULL_COMMIT = "d00c776" + "0" * 33
MEW = DojoLocation("https://github.com/example/tiny", "d00c776", "Tiny.lean", "t")


def _traced(cache: Path, toolchain: str = "leanprover/lean4:v4.9.0\n", *, repl: bool = True) -> Path:
    folder = cache / f"example-tiny-{FULL_COMMIT}" / "tiny"
    folder.mkdir(parents=True)
    (folder / "lean-toolchain").write_text(toolchain, encoding="utf-8")
    (folder / "Tiny.lean").write_text(TRACED_FILE, encoding="utf-8")
    if repl:
        (folder / "Lean4Repl.lean").write_text("-- LeanDojo's REPL\n", encoding="utf-8")
    return folder


@pytest.fixture
def offline(ld: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every network entry point of `lean_dojo.data_extraction.lean` raises (and is recorded)."""
    calls: list[str] = []
    lean_module = ld.data_extraction.lean

    def no_network(name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise OSError(f"no network ({name})")

        return refuse

    for name in ("url_to_repo", "read_url", "url_exists"):
        monkeypatch.setattr(lean_module, name, no_network(name))
    return calls


@pytest.fixture
def cache(ld: Any) -> Any:
    """LeanDojo's real CACHE_DIR (read once at import), emptied of what a test put there."""
    from lean_env.dojo import TracedRepos

    path = TracedRepos(DojoConfig()).cache_dir()
    before = set(path.iterdir()) if path.is_dir() else set()
    yield path
    import shutil

    for entry in set(path.iterdir()) - before:
        shutil.rmtree(entry, ignore_errors=True)


def test_lean_git_repo_of_a_github_url_needs_the_network(ld: Any, offline: list[str]) -> None:
    """Why the adapter does not construct `LeanGitRepo` for a traced GitHub repository.

    Upstream: `lean_dojo/data_extraction/lean.py`, `LeanGitRepo.__post_init__` calls `url_to_repo` (the GitHub
    API) for a GitHub URL and `get_config("lean-toolchain")` (`read_url`) on every construction.
    """
    with pytest.raises(OSError, match="no network"):
        ld.LeanGitRepo("https://github.com/example/tiny", FULL_COMMIT)
    assert offline and offline[0] == "url_to_repo"


def test_a_traced_github_repository_opens_offline_and_once(ld: Any, offline: list[str], cache: Path) -> None:
    """The repository object comes from the cache alone, and LeanDojo's own lookups accept it.

    Upstream: `lean_dojo/data_extraction/trace.py`, `get_traced_repo_path` reads `repo.get_cache_dirname()` and
    `repo.name`; `Dojo.__init__` (`lean_dojo/interaction/dojo.py`) reads `entry.repo`. `LeanGitRepo`'s fields
    are exactly the five `_offline_repo` sets.
    """
    import dataclasses

    from lean_env.dojo import TracedRepos

    assert [f.name for f in dataclasses.fields(ld.LeanGitRepo)] == [
        "url",
        "commit",
        "repo",
        "lean_version",
        "repo_type",
    ]
    folder = _traced(cache)
    repos = TracedRepos(DojoConfig())
    assert repos.path(MEW) == folder
    repo = repos.repo(MEW)
    assert repos.repo(MEW) is repo, "built once per (url, commit)"
    assert repo.commit == FULL_COMMIT and repo.name == "tiny" and repo.lean_version == "v4.9.0"
    assert Path(ld.get_traced_repo_path(repo)) == folder
    assert ld.is_available_in_cache(repo)
    dojo = ld.Dojo(ld.Theorem(repo, "Tiny.lean", "t"), timeout=5)
    assert dojo.repo is repo
    assert offline == [], "nothing touched the network"


async def test_an_untraced_repository_is_refused_with_the_command_that_traces_it(
    ld: Any, offline: list[str], cache: Path
) -> None:
    """Upstream `get_traced_repo_path` traces a repository missing from the cache (no timeout); the adapter refuses.

    The slot of `max_dojos` taken by the failed start is given back (the second start fails the same way
    instead of waiting).
    """
    env = DojoLeanEnv(DojoConfig(max_dojos=1), locate={"t": MEW})
    for _ in range(2):
        with pytest.raises(MissingDependency) as caught:
            await asyncio.wait_for(env.start(THEOREM), 10)
        assert "allow_trace" in str(caught.value)
        assert "from lean_dojo import LeanGitRepo, trace; trace(LeanGitRepo('https://github.com/example/tiny'" in str(
            caught.value
        )
    with pytest.raises(MissingDependency, match="allow_trace"):
        await env.verify(THEOREM, "by exact h.symm", 5)
    assert offline == []


def test_a_lean_version_lean_dojo_does_not_support_is_refused(ld: Any, offline: list[str], cache: Path) -> None:
    """lean-dojo-mew pins `leanprover/lean4:nightly-2023-08-19`.

    Upstream: `lean_dojo/data_extraction/lean.py`, `is_supported_version` wants `v4.3.0-rc2` or newer and
    answers False for any `nightly-...` version (`LeanGitRepo.__post_init__` only logs a warning).
    """
    from lean_dojo.data_extraction.lean import is_supported_version

    from lean_env.dojo import TracedRepos

    assert not is_supported_version("nightly-2023-08-19")
    assert is_supported_version("v4.20.0") and is_supported_version("v4.3.0-rc2")
    _traced(cache, "leanprover/lean4:nightly-2023-08-19\n")
    with pytest.raises(MissingDependency, match="nightly-2023-08-19") as caught:
        TracedRepos(DojoConfig()).repo(MEW)
    assert "--env repl" in str(caught.value)


def test_a_trace_older_than_lean_dojo_2_is_refused(ld: Any, offline: list[str], cache: Path) -> None:
    """Upstream: `Dojo.__enter__` (`lean_dojo/interaction/dojo.py`) asserts that the trace has `Lean4Repl.lean`."""
    import inspect

    from lean_env.dojo import TracedRepos

    assert "Lean4Repl.lean" in inspect.getsource(ld.Dojo.__enter__)
    _traced(cache, repl=False)
    with pytest.raises(MissingDependency, match=r"Lean4Repl\.lean"):
        TracedRepos(DojoConfig()).repo(MEW)


def test_lean_dojo_working_directory_is_serialised_across_threads(ld: Any, tmp_path: Path) -> None:
    """Upstream: `lean_dojo/utils.py`, `working_directory` calls `os.chdir` (process-wide); `Dojo.__enter__`
    spawns Lean inside it. After `import_lean_dojo`, every LeanDojo module's `working_directory` holds a lock.
    """
    import inspect
    import threading

    import lean_dojo.interaction.dojo as dojo_module
    import lean_dojo.utils as utils_module

    wrapped = dojo_module.working_directory
    assert getattr(wrapped, "serialised_by_prover", False)
    assert utils_module.working_directory is not None and utils_module.working_directory.serialised_by_prover
    assert "os.chdir" in inspect.getsource(wrapped.original)
    origin = os.getcwd()
    seen: list[bool] = []

    def visit(folder: Path) -> None:
        with dojo_module.working_directory(folder):
            for _ in range(10):
                seen.append(os.getcwd() == str(folder))
                time.sleep(0.02)

    folders = [tmp_path / f"d{i}" for i in range(4)]
    threads = [threading.Thread(target=visit, args=(folder,)) for folder in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(seen) == 40 and all(seen), "a thread saw another thread's working directory"
    assert os.getcwd() == origin


async def test_sessions_beyond_max_dojos_wait_for_a_slot(ld: Any, world: World) -> None:
    env = DojoLeanEnv(
        DojoConfig(max_dojos=1),
        locate={"t": LOCATION},
        dojo_factory=lambda location, timeout: ScriptedDojo(ld, world, location, timeout),
    )
    first = await env.start(THEOREM)
    second = asyncio.ensure_future(env.start(THEOREM))
    await asyncio.sleep(0.3)
    assert not second.done() and world.opened == 1
    assert isinstance(first, ProofSession)
    await first.close()
    opened = await asyncio.wait_for(second, 5)
    assert isinstance(opened, ProofSession) and world.opened == 2
    await env.close()


def test_default_dojo_slots_follow_ram_and_cores() -> None:
    config = DojoConfig(memory_limit="16g")
    assert config.dojo_slots(total_memory_bytes=64 * 2**30, cores=32) == 4
    assert config.dojo_slots(total_memory_bytes=8 * 2**30, cores=32) == 1
    assert config.dojo_slots(total_memory_bytes=1024 * 2**30, cores=8) == 8
    assert DojoConfig(max_dojos=3).dojo_slots(total_memory_bytes=1, cores=1) == 3

"""`JobRunner` over a real SQLite `JobStore`, with the scripted Lean env and generator as its backends."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lean_env.errors import BackendCrashed
from lean_env.types import ProofClosed, TacticError, TacticErrorKind, Theorem, VerifyResult
from prover.cli.main import cli
from prover.config import InformalSettings, ProverSettings
from prover.models.text import Completion, FinishReason, TextRequest
from prover.service.jobs import Job, JobKind, JobState
from prover.service.runner import JobRunner
from prover.service.settings import ServiceSettings
from prover.service.store import JobStore
from prover.wiring import Backends
from tests.stand_ins.scripted import Effect, Script, ScriptedEnv, ScriptedGenerator, Slow, uniform_candidates

CLOSED = ProofClosed()
FAIL = TacticError(TacticErrorKind.LEAN_ERROR, "scripted failure")
GUARD_S = 10.0
"""No wait in these tests may take longer; a hang fails the test instead of the suite."""

PROVABLE: Script = {"root": {"intro h": "s1", "bad": FAIL}, "s1": {"simp": CLOSED, "bad": FAIL}}
HOPELESS: Script = {"root": {"bad": FAIL, "worse": FAIL}}
TRIVIAL: Script = {"root": {"trivial": CLOSED}}


class Chain(Mapping[str, Mapping[str, Effect]]):
    """`d0 -step-> d1 -step-> ...`, each step taking `seconds`; `d{length}` closes with `done` (never if None)."""

    def __init__(self, seconds: float, length: int | None = None) -> None:
        self.seconds = seconds
        self.length = length

    def __getitem__(self, state: str) -> Mapping[str, Effect]:
        if not state.startswith("d") or not state[1:].isdigit():
            raise KeyError(state)
        depth = int(state[1:])
        if self.length is not None and depth >= self.length:
            return {"done": CLOSED}
        return {"step": Slow(self.seconds, f"d{depth + 1}")}

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class ChainTable(Mapping[str, list[tuple[str, float, int]]]):
    """The generator's table for a `Chain`: each state's scripted tactics, one candidate each."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def __getitem__(self, state: str) -> list[tuple[str, float, int]]:
        return [(tactic, -1.0, 1) for tactic in self.chain[state]]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings(**service: Any) -> ProverSettings:
    fast = {
        "lease_s": 5.0,
        "heartbeat_s": 0.2,
        "cancel_poll_s": 0.05,
        "poll_s": 0.02,
        "event_interval_s": 0.05,
        **service,
    }
    return ProverSettings(service=ServiceSettings(**fast))


def world(scripts: Mapping[str, Script | Chain], **env: Any) -> tuple[ScriptedEnv, ScriptedGenerator]:
    """An env with `scripts` by theorem name (root state `root`, or `d0` for a chain) and its generator."""
    table: dict[str, Any] = {}
    chained: dict[str, tuple[str, Any]] = {}
    chain_tables: list[ChainTable] = []
    for name, script in scripts.items():
        if isinstance(script, Chain):
            chained[name] = ("d0", script)
            chain_tables.append(ChainTable(script))
        else:
            chained[name] = ("root", script)
            table.update(uniform_candidates(script))

    class Table(Mapping[str, list[tuple[str, float, int]]]):
        def __getitem__(self, state: str) -> list[tuple[str, float, int]]:
            if state in table:
                return list(table[state])
            for chain in chain_tables:
                try:
                    return chain[state]
                except KeyError:
                    continue
            raise KeyError(state)

        def __iter__(self) -> Iterator[str]:
            return iter(table)

        def __len__(self) -> int:
            return len(table)

    return ScriptedEnv({}, scripts=chained, **env), ScriptedGenerator(Table())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    job_store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    job_store.migrate()
    try:
        yield job_store
    finally:
        job_store.close()


@asynccontextmanager
async def running(store: JobStore, env: Any, generator: Any, **options: Any) -> AsyncIterator[JobRunner]:
    prover_settings = options.pop("settings", None) or settings()
    runner = JobRunner(
        store, prover_settings, env=env, generator=generator, workers=options.pop("workers", 1), **options
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def wait_until(check: Callable[[], Any], what: str, timeout: float = GUARD_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_finished(store: JobStore, job_id: str) -> Job:
    def terminal() -> Job | None:
        job = store.get(job_id)
        return job if job is not None and job.terminal else None

    job: Job = await wait_until(terminal, f"job {job_id} to finish")
    return job


async def wait_idle(runner: JobRunner) -> None:
    """Until the runner is done with its jobs (the store shows a job finished before `finish` returns)."""
    await wait_until(lambda: runner.stats.busy == 0, "the runner to be idle")


def prove(store: JobStore, statement: str, **request: Any) -> str:
    job, created = store.submit(JobKind.PROVE, {"statement": statement, **request})
    assert created
    return job.id


def types(store: JobStore, job_id: str) -> list[str]:
    return [event.type for event in store.events(job_id)]


async def test_a_prove_job_is_proved_with_its_events_in_order_and_consecutive(store: JobStore) -> None:
    env, generator = world({"t1": PROVABLE})
    job_id = prove(store, "theorem t1 (p : Prop) (h : p) : p := by")
    async with running(store, env, generator) as runner:
        job = await wait_finished(store, job_id)
        await wait_idle(runner)
        assert runner.stats.jobs_finished_by_state == {"completed": 1}
        assert runner.stats.verdicts_by_judge == {"repl": 1}
        assert runner.stats.expansions_total == 2 and runner.stats.candidates_total == 4
    assert job.state is JobState.COMPLETED and job.error is None
    assert job.result is not None
    assert (job.result["status"], job.result["proved"]) == ("proved", True)
    assert job.result["proof"] == "by\n  intro h\n  simp"
    events = store.events(job_id)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["queued", "started"] and kinds[-2:] == ["verdict", "finished"]
    assert kinds.index("proof_found") < kinds.index("verdict")
    assert "expansion" in kinds and kinds.count("finished") == 1
    last_expansion = [event for event in events if event.type == "expansion"][-1].data
    assert last_expansion["expansion"] == 2 and last_expansion["state"] == "s1"
    assert last_expansion["stats"]["expansions"] == 2 and {"node", "parent", "frontier"} <= last_expansion.keys()
    verdict = events[-2].data
    assert verdict == {"status": "proved", "proof": "by\n  intro h\n  simp", "judge": "repl", "reason": None}
    assert events[-1].data["state"] == "completed" and events[-1].data["result"]["proved"] is True


async def test_idle_claim_loops_share_one_poll_and_notify_starts_a_job_at_once(store: JobStore) -> None:
    env, generator = world({"t1": PROVABLE})
    claims = 0
    claim = store.claim

    def counting_claim(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return claim(*args, **kwargs)

    store.claim = counting_claim  # type: ignore[method-assign]
    async with running(store, env, generator, workers=8, settings=settings(poll_s=0.5)) as runner:
        await asyncio.sleep(1.2)
        # 8 idle loops, one shared poll every 0.5 s: about 3 polls of 8 loops, never 8 loops every 0.02 s.
        assert claims <= 8 * 4
        job_id = prove(store, "theorem t1 (p : Prop) (h : p) : p := by")
        started = time.monotonic()
        runner.notify()
        await wait_until(lambda: store.get(job_id).state is not JobState.QUEUED, "the claim", timeout=0.4)  # type: ignore[union-attr]
        assert time.monotonic() - started < 0.4  # before the next shared poll was due
        job = await wait_finished(store, job_id)
    assert job.state is JobState.COMPLETED


async def test_a_job_not_provable_completes_with_the_search_status(store: JobStore) -> None:
    env, generator = world({"t2": HOPELESS})
    job_id = prove(store, "theorem t2 : False := by", expansions=5)
    async with running(store, env, generator):
        job = await wait_finished(store, job_id)
    assert job.state is JobState.COMPLETED
    assert job.result is not None and job.result["status"] == "failed" and job.result["proof"] is None
    assert "every tactic from the root failed" in job.result["failure_reason"]
    assert types(store, job_id)[-2:] == ["verdict", "finished"]


async def test_the_request_budget_is_capped_by_the_service_limits(store: JobStore) -> None:
    env, generator = world({"t3": Chain(0.0)})
    job_id = prove(store, "theorem t3 : True := by", expansions=500)
    limited = settings(limits={"max_expansions": 3})
    async with running(store, env, generator, settings=limited):
        job = await wait_finished(store, job_id)
    assert job.result is not None
    assert (job.result["status"], job.result["stats"]["expansions"]) == ("budget_exhausted", 3)


async def test_cancelling_a_running_job_stops_it_within_a_second_and_finishes_it_once(store: JobStore) -> None:
    env, generator = world({"slow": Chain(0.05)})
    job_id = prove(store, "theorem slow : True := by", timeout_s=60)
    async with running(store, env, generator) as runner:
        await wait_until(lambda: "expansion" in types(store, job_id), "the first expansion event")
        started = time.monotonic()
        store.cancel(job_id)
        job = await wait_finished(store, job_id)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.2)  # a second finish would land here
        assert runner.stats.busy == 0 and runner.stats.jobs_finished_by_state == {"cancelled": 1}
    assert job.state is JobState.CANCELLED and elapsed < 1.0
    assert job.result is not None and job.result["status"] == "cancelled"
    assert job.result["stats"]["expansions"] >= 1
    assert types(store, job_id).count("finished") == 1
    assert all(session.closed for session in env.sessions)


async def test_a_job_whose_lease_was_taken_away_is_stopped_and_writes_nothing(store: JobStore) -> None:
    env, generator = world({"slow": Chain(0.05)})
    job_id = prove(store, "theorem slow : True := by", timeout_s=60)
    async with running(store, env, generator) as runner:
        await wait_until(lambda: "expansion" in types(store, job_id), "the first expansion event")
        # The lease expires (as if the runner had stalled) and another worker takes the job over;
        # both happen in one step of the event loop, so the runner cannot take it back in between.
        assert store.requeue_expired(now=time.time() + 3600) == [job_id]
        thief = store.claim("elsewhere:1:0", lease_s=60)
        assert thief is not None and thief.id == job_id
        seq = thief.last_event_seq
        await wait_until(lambda: runner.stats.busy == 0, "the runner to drop the job")
        await asyncio.sleep(0.2)
    job = store.get(job_id)
    assert job is not None and job.state is JobState.RUNNING and job.lease_owner == "elsewhere:1:0"
    assert store.events(job_id, after=seq) == []
    assert runner.stats.jobs_finished_by_state == {}


async def test_stop_leaves_running_jobs_running_and_a_new_runner_takes_them_over(store: JobStore) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    host = socket.gethostname()
    env, generator = world({"chain": Chain(0.05, length=8)})
    job_id = prove(store, "theorem chain : True := by")
    async with running(store, env, generator, worker_prefix=f"{host}:{dead_pid}"):
        await wait_until(lambda: "expansion" in types(store, job_id), "the first expansion event")
    stopped = store.get(job_id)
    assert stopped is not None and stopped.state is JobState.RUNNING
    assert stopped.lease_owner is not None and stopped.lease_owner.startswith(f"{host}:{dead_pid}:")
    assert "finished" not in types(store, job_id)
    # A runner starting on this host re-queues the jobs of dead workers at once, then runs them.
    async with running(store, env, generator):
        job = await wait_finished(store, job_id)
    assert job.state is JobState.COMPLETED and job.attempts == 2
    assert job.result is not None and job.result["status"] == "proved"
    kinds = types(store, job_id)
    assert kinds.count("started") == 2 and kinds.count("finished") == 1


async def test_a_verify_batch_reports_each_item(store: JobStore) -> None:
    env, generator = world({"v1": TRIVIAL, "v2": TRIVIAL})
    items = [
        {"statement": "theorem v1 : True := by", "proof": "by\n  trivial"},
        {"statement": "theorem v2 : True := by", "proof": "by\n  nonsense"},
        {"statement": "def v3 := 1", "proof": "by\n  trivial"},
    ]
    job, _ = store.submit(JobKind.VERIFY, {"items": items})
    async with running(store, env, generator) as runner:
        done = await wait_finished(store, job.id)
        assert runner.stats.verdicts_by_judge == {"repl": 1}
    assert done.state is JobState.COMPLETED and done.result is not None
    assert done.result["all_valid"] is False
    statuses = [(item["index"], item["status"], item["judge"]) for item in done.result["items"]]
    assert statuses == [(0, "valid", "repl"), (1, "lean_error", "repl"), (2, "invalid_request", None)]
    assert "fails on replay" in done.result["items"][1]["reason"]
    assert "theorem" in done.result["items"][2]["reason"]
    events = store.events(job.id)
    assert sorted(event.data["index"] for event in events if event.type == "item") == [0, 1, 2]


async def test_two_runners_on_one_store_never_run_a_job_twice(store: JobStore) -> None:
    names = [f"p{number}" for number in range(8)]
    env, generator = world({name: Chain(0.02, length=2) for name in names})
    ids = [prove(store, f"theorem {name} : True := by") for name in names]
    async with (
        running(store, env, generator, workers=2) as first,
        running(store, env, generator, workers=2) as second,
    ):
        jobs = [await wait_finished(store, job_id) for job_id in ids]
        await wait_idle(first)
        await wait_idle(second)
        finished = first.stats.jobs_finished_by_state.get("completed", 0)
        finished += second.stats.jobs_finished_by_state.get("completed", 0)
    assert finished == len(ids)
    assert all(job.state is JobState.COMPLETED and job.attempts == 1 for job in jobs)
    for job_id in ids:
        kinds = types(store, job_id)
        assert kinds.count("started") == 1 and kinds.count("finished") == 1


async def test_a_broken_lean_backend_fails_the_job_with_its_error(store: JobStore) -> None:
    env, generator = world({"t1": PROVABLE}, start_error="the REPL died at start")
    job_id = prove(store, "theorem t1 (p : Prop) (h : p) : p := by")
    async with running(store, env, generator):
        job = await wait_finished(store, job_id)
    assert job.state is JobState.FAILED
    assert job.error is not None and "the REPL died at start" in job.error
    assert job.result is not None and job.result["status"] == "env_error"


class CrashingVerify(ScriptedEnv):
    async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult:
        raise BackendCrashed("the REPL process exited", stderr="killed by signal 9")


async def test_an_exception_from_lean_fails_the_job_with_the_error_text_and_no_traceback(store: JobStore) -> None:
    env = CrashingVerify({}, scripts={"v1": ("root", TRIVIAL)})
    job, _ = store.submit(
        JobKind.VERIFY, {"items": [{"statement": "theorem v1 : True := by", "proof": "by\n  trivial"}]}
    )
    async with running(store, env, ScriptedGenerator({})) as runner:
        done = await wait_finished(store, job.id)
        await wait_idle(runner)
        assert runner.stats.jobs_finished_by_state == {"failed": 1}
    assert done.state is JobState.FAILED and done.error is not None
    assert done.error.startswith("BackendCrashed: the REPL process exited") and "Traceback" not in done.error


async def test_a_malformed_request_fails_the_job_and_the_runner_goes_on(store: JobStore) -> None:
    env, generator = world({"t1": PROVABLE})
    bad = prove(store, "theorem t1 (p : Prop) (h : p) : p := by exact h")
    good = prove(store, "theorem t1 (p : Prop) (h : p) : p := by")
    async with running(store, env, generator):
        failed = await wait_finished(store, bad)
        completed = await wait_finished(store, good)
    assert failed.state is JobState.FAILED and failed.error is not None
    assert failed.error.startswith("invalid request:") and "nothing may follow" in failed.error
    assert completed.state is JobState.COMPLETED


async def test_a_runner_without_a_text_generator_leaves_formalize_jobs_queued(store: JobStore) -> None:
    env, generator = world({"t1": PROVABLE})
    request = {"informal_statement": "p", "formal_statement": "theorem t1 : True := by", "language": "lean4"}
    formalize, _ = store.submit(JobKind.FORMALIZE, request)
    job_id = prove(store, "theorem t1 (p : Prop) (h : p) : p := by")
    async with running(store, env, generator) as runner:
        assert JobKind.FORMALIZE not in runner.kinds
        await wait_finished(store, job_id)
    job = store.get(formalize.id)
    assert job is not None and job.state is JobState.QUEUED


# --- `prover worker` ---------------------------------------------------------------------------------


class Tactics:
    """A text generator for the `prover worker` test: `simp` on the state `⊢ B`, else `intro h`."""

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        def tactic(prompt: str) -> str:
            state = prompt.rsplit("⊢", 1)[-1]
            return "simp" if state.lstrip().startswith("B") else "intro h"

        return [[Completion(tactic(request.prompt), (-0.1,), FinishReason.STOP)] * request.n for request in requests]

    async def close(self) -> None:
        return None


def test_prover_worker_runs_queued_jobs_until_sigint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    job_store = JobStore(url)
    job_store.migrate()
    job_id = prove(job_store, "theorem w (p : Prop) (h : p) : p := by", samples=1)
    env = ScriptedEnv({}, scripts={"w": ("⊢ A", {"⊢ A": {"intro h": "⊢ B"}, "⊢ B": {"simp": CLOSED}})})

    def interrupt_when_finished() -> None:
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            job = job_store.get(job_id)
            if job is not None and job.terminal:
                break
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    lean_settings: list[Any] = []

    def build_env(lean: Any, **_: Any) -> ScriptedEnv:
        lean_settings.append(lean)
        return env

    backends = Backends(build_env=build_env, build_text_generator=lambda model: Tactics())
    watcher = threading.Thread(target=interrupt_when_finished)
    watcher.start()
    try:
        args = ["worker", "--db", url, "--workers", "1", "--lean-workers", "2", "--set", "service.poll_s=0.02"]
        done = CliRunner().invoke(cli, args, obj=backends, env={"PROVER_HOME": str(tmp_path / "home")})
    finally:
        watcher.join()
    assert done.exit_code == 0, done.output
    job = job_store.get(job_id)
    job_store.close()
    assert job is not None and job.state is JobState.COMPLETED
    assert job.result is not None and job.result["proof"] == "by\n  intro h\n  simp"
    assert lean_settings[0].repl.workers == 2  # --lean-workers; --workers is the jobs at once


class Sketches:
    """A text generator whose every completion is the same sketch: one hole."""

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        return [[Completion("\n  sorry", (-0.1,), FinishReason.STOP)] * request.n for request in requests]

    async def close(self) -> None:
        return None


async def test_a_formalize_job_closes_the_sketch_holes_and_returns_the_attempts(store: JobStore) -> None:
    script: Script = {"root": {"simp": CLOSED}}
    env = ScriptedEnv(script)
    request = {
        "informal_statement": "True holds.",
        "informal_proof": "Trivially.",
        "formal_statement": "theorem f : True := by",
        "language": "lean4",
    }
    job, _ = store.submit(JobKind.FORMALIZE, request)
    config = settings().model_copy(update={"informal": InformalSettings(automation=("simp",))})
    generator = ScriptedGenerator(uniform_candidates(script))
    async with running(store, env, generator, text=Sketches(), settings=config):
        done = await wait_finished(store, job.id)
    assert done.state is JobState.COMPLETED and done.result is not None
    assert done.result["proved"] is True and done.result["language"] == "lean4"
    assert "simp" in done.result["proof"] and done.result["attempts"][0]["gaps"][0]["closing"] == "simp"
    verdict = [event.data for event in store.events(job.id) if event.type == "verdict"]
    assert verdict == [{"status": "proved", "proof": done.result["proof"], "judge": "repl", "reason": None}]

"""The service over real HTTP for the API, security and client tests: uvicorn on loopback in a thread.

`scripted_backends()` gives the app a scripted Lean and model (`tests.stand_ins.scripted`):
- any theorem not named below starts in `root`; the model proposes `cheat` (closes every goal
  but the whole-file re-check rejects it) and `step` (-> `mid`, where `finish` closes the goal),
  so a prove job shows `proof_rejected`, then `proof_found` and a `proved` verdict;
- `theorem slow ...` starts in `slow_root`, whose only tactic takes a minute: a job that runs
  until it is cancelled (or the app stops).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from lean_env.types import ProofClosed
from prover.config import ProverSettings
from prover.service.app import create_app
from prover.wiring import Backends
from tests.stand_ins.scripted import ScriptedEnv, ScriptedGenerator, Slow, Unsound

PROVABLE = "theorem t (n : ℕ) : n + 0 = n := by"
SLOW = "theorem slow : True := by"
PROOF = "by\n  step\n  finish"
"""The proof of any default theorem, as `search.render_proof` writes it."""
CHEAT = "by\n  cheat"

SCRIPT: dict[str, Any] = {"root": {"step": "mid", "cheat": Unsound()}, "mid": {"finish": ProofClosed()}}
SLOW_SCRIPT: dict[str, Any] = {"slow_root": {"wait": Slow(60.0, ProofClosed())}}
TABLE = {
    "root": [("cheat", -0.1, 1), ("step", -0.5, 1)],
    "mid": [("finish", -0.2, 1)],
    "slow_root": [("wait", -0.1, 1)],
}


def build_env(lean: Any, **_: Any) -> ScriptedEnv:
    return ScriptedEnv(SCRIPT, scripts={"slow": ("slow_root", SLOW_SCRIPT)})


def build_generator(model: Any) -> ScriptedGenerator:
    return ScriptedGenerator(TABLE)


def broken_env(lean: Any, **_: Any) -> ScriptedEnv:
    raise RuntimeError("the REPL binary is missing (scripted)")


def scripted_backends(**replace: Any) -> Backends:
    return Backends(**{"build_env": build_env, "build_generator": build_generator, **replace})


def settings_for(tmp_path: Path, **service: Any) -> ProverSettings:
    """Settings with a SQLite store in `tmp_path` and fast polling; `service` overrides `[service]`."""
    base: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'jobs.sqlite'}",
        "workers": 2,
        "poll_s": 0.05,
        "heartbeat_s": 0.2,
        "cancel_poll_s": 0.05,
        "event_interval_s": 0.05,
        "lease_s": 5.0,
    }
    return ProverSettings.model_validate(
        {
            "home": str(tmp_path),
            "search": {"tactic_timeout_s": 120.0, "samples": 4, "expansions": 20, "timeout_s": 120.0},
            "service": {**base, **service},
        }
    )


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """uvicorn serving `app` on a free loopback port in a background thread (lifespan included)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._socket = free_socket()
        port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()


@contextlib.contextmanager
def serving(settings: ProverSettings, backends: Backends | None = None) -> Iterator[LiveServer]:
    """`create_app(settings, backends=...)` served over HTTP for the `with` block."""
    server = LiveServer(create_app(settings, backends=backends or scripted_backends())).start()
    try:
        yield server
    finally:
        server.stop()


def sse_events(text: str) -> list[tuple[int, str, Any]]:
    """`(id, type, data)` of each event in an event-stream body (comments skipped)."""
    import json

    out: list[tuple[int, str, Any]] = []
    for block in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields.setdefault(name, []).append(value)
        if "data" in fields:
            out.append((int(fields["id"][0]), fields["event"][0], json.loads("\n".join(fields["data"]))))
    return out


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)

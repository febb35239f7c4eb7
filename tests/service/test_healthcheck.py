"""The image's HEALTHCHECK (`python -m prover.service.healthcheck`) on a real server and on a
container that runs no server."""

from __future__ import annotations

from pathlib import Path

from prover.service.healthcheck import check, serving
from tests.service.live_server import serving as live_server
from tests.service.live_server import settings_for


def _fake_proc(root: Path, *command_lines: list[str]) -> Path:
    for pid, argv in enumerate(command_lines, start=1):
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(word.encode() for word in argv) + b"\0")
    return root


def test_a_container_running_eval_or_worker_is_healthy_without_a_server(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path / "proc", ["/opt/venv/bin/python", "/opt/venv/bin/prover", "eval", "minif2f"])
    assert not serving(proc)
    assert check(1, proc=proc) == (True, "no `prover serve` in this container: nothing to ask")


def test_a_server_is_healthy_only_while_health_answers(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path / "proc", ["/opt/venv/bin/python", "/opt/venv/bin/prover", "serve", "--host", "0.0.0.0"])
    assert serving(proc)
    with live_server(settings_for(tmp_path)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        healthy, why = check(port, proc=proc)
        assert healthy, why
    healthy, why = check(port, proc=proc, timeout=1.0)  # stopped: nothing listens any more
    assert not healthy and "did not answer" in why

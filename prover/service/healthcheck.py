"""The container's `HEALTHCHECK`: `python -m prover.service.healthcheck`.

In a container running `prover serve`, healthy means its `/health` answers 200 on the port it
listens on (`PROVER_SERVICE__PORT`, default 8000). A container of the same image running
`prover eval` or `prover worker` serves no HTTP: it is reported healthy while it runs, instead of
unhealthy for lacking a server it never had. Exit status 0 is healthy, 1 unhealthy (Docker's rule).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path


def serving(proc: Path = Path("/proc")) -> bool:
    """Whether a `prover serve` process runs here (read from every process's command line)."""
    for cmdline in _command_lines(proc):
        words = [word.decode("utf-8", "replace") for word in cmdline.split(b"\0") if word]
        if "serve" in words and any(Path(word).name in {"prover", "prover.cli.main"} for word in words):
            return True
    return False


def _command_lines(proc: Path) -> Iterable[bytes]:
    for entry in proc.glob("[0-9]*/cmdline"):
        try:
            yield entry.read_bytes()
        except OSError:  # the process ended while we looked
            continue


def check(port: int, *, proc: Path = Path("/proc"), timeout: float = 4.0) -> tuple[bool, str]:
    """(healthy, why)."""
    if not serving(proc):
        return True, "no `prover serve` in this container: nothing to ask"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
            return response.status == 200, f"/health answered {response.status}"
    except OSError as error:
        return False, f"/health did not answer: {error}"


def main() -> int:
    healthy, why = check(int(os.environ.get("PROVER_SERVICE__PORT", "8000")))
    print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

"""The web page in a real browser against the real app over real HTTP, with scripted Lean and model.

Headless Chromium (Debian's, driven by Playwright; Playwright's own browser download is never used)
opens `/` on a uvicorn server bound to loopback. The app is `create_app` with a job store in a temp
dir and scripted stand-ins as its backends, slowed down so a search takes a few seconds and the live
updates can be watched. The server requires a token, so the page's Bearer path (fetch-streamed SSE)
is the one exercised, and its 401 display too.

Without Chromium or Playwright the test is skipped, except under `CI=true`, where it fails (CI
installs Chromium). Screenshots go to `$PROVER_SCREENSHOT_DIR`, else the test's tmp_path.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lean_env.types import ProofClosed
from prover.config import load_settings
from prover.service.settings import hash_token
from prover.wiring import Backends
from tests.stand_ins.scripted import ScriptedEnv, ScriptedGenerator, uniform_candidates

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "web-page-test-token"
HOSTILE = '<img src=x onerror="window.__pwned = 1"><b id="pwned">bold</b>'
"""Markup inside a proof state: the page must show it as text."""
STEPS = 8
LONG_STEPS = 400


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: CI installs it, so this is an error here)")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _missing("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)")
    raise AssertionError("unreachable")


def _sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not importable (pip install playwright)")
    return sync_playwright


# ---------------------------------------------------------------- the scripted world


def _chain(prefix: str, steps: int, *, hostile_at: int | None = None) -> dict[str, dict[str, Any]]:
    """`steps` states, each with `step` to the next and `stall` to a dead end; `done` closes the last."""

    def state(index: int) -> str:
        mark = f" {HOSTILE}" if index == hostile_at else ""
        return f"x : ℕ\nh : {prefix} {index}{mark}\n⊢ x = x"

    script: dict[str, dict[str, Any]] = {}
    for index in range(steps):
        script[state(index)] = {"step": state(index + 1), "stall": f"{prefix} stuck {index}\n⊢ False"}
    script[state(steps)] = {"done": ProofClosed()}
    return script


DEMO = _chain("demo", STEPS, hostile_at=2)
LONG = _chain("long", LONG_STEPS)


def _initial(script: dict[str, dict[str, Any]]) -> str:
    return next(iter(script))


def _latency(state: str, tactic: str) -> float:
    return 0.15


def _build_env(lean: Any, **_: Any) -> ScriptedEnv:
    return ScriptedEnv(
        DEMO,
        _initial(DEMO),
        scripts={"web_long": (_initial(LONG), LONG)},
        latency=_latency,
    )


def _build_generator(model: Any) -> ScriptedGenerator:
    return ScriptedGenerator({**uniform_candidates(DEMO), **uniform_candidates(LONG)}, latency=0.1)


# ---------------------------------------------------------------- the server


@dataclass
class Server:
    url: str
    client: httpx.Client


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    import uvicorn

    from prover.service.app import create_app

    settings = load_settings(
        environ={"HOME": str(tmp_path)},
        overrides={
            "home": str(tmp_path / "home"),
            "search": {"tactic_timeout_s": 5.0, "concurrent_tactics": 4},
            "service": {
                "database_url": f"sqlite:///{tmp_path / 'jobs.sqlite'}",
                "workers": 2,
                "event_interval_s": 0.1,
                "heartbeat_s": 0.3,
                "cancel_poll_s": 0.1,
                "poll_s": 0.05,
                "tokens": [{"name": "web", "sha256": hash_token(TOKEN)}],
            },
        },
        cwd=tmp_path,
    )
    backends = Backends(build_env=functools.partial(_build_env), build_generator=functools.partial(_build_generator))
    app = create_app(settings, backends=backends)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start (see the log above)")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield Server(url, client)
    uv.should_exit = True
    thread.join(timeout=15)
    sock.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PROVER_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nweb page screenshots: {folder}")
    return folder


# Page scripts are passed as function text: the page's CSP forbids eval, which Playwright uses for
# bare expressions. The counters are recorded in the page itself on every change (with the job state
# beside them), so the test sees each update however briefly it showed.
RECORD_COUNTERS = """
() => {
  window.__counters = [];
  const counter = document.getElementById("counter-expansions");
  const state = document.getElementById("job-state");
  new MutationObserver(() => {
    window.__counters.push({ value: counter.textContent, state: state.dataset.state || "" });
  }).observe(counter, { childList: true, characterData: true, subtree: true });
}
"""


@pytest.fixture
def chromium() -> str:
    """The browser to drive; asked for before the server, so a machine without one skips at once."""
    path = _chromium()
    _sync_playwright()
    return path


def test_the_page_proves_live_lists_and_cancels_jobs(chromium: str, server: Server, shots: Path) -> None:
    sync_playwright = _sync_playwright()
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready='true']")

            # No token yet: the jobs list is refused, and the page says so with the server's detail.
            error = page.locator("#error")
            error.wait_for(state="visible")
            assert error.get_attribute("data-status") == "401"
            assert "token" in (page.text_content("#error-title") or "").lower()
            assert page.text_content("#error-detail"), "the 401 detail is not shown"

            page.fill("#token", TOKEN)
            page.click("#token-save")
            assert page.text_content("#token-status") == "token set"
            page.click("#error-dismiss")

            # A statement the API refuses (422): its detail is shown.
            page.fill("#prove-statement", "theorem web_bad : True := by simp")
            page.click("#prove-submit")
            error.wait_for(state="visible")
            assert error.get_attribute("data-status") == "422"
            assert "nothing may follow" in (page.text_content("#error-detail") or "")

            # The proof: live counters, a growing tree, then the proof and the judge.
            page.evaluate(RECORD_COUNTERS)
            page.fill("#prove-statement", "theorem web_demo : True := by")
            page.fill("#prove-expansions", "100")
            page.fill("#prove-samples", "4")
            page.click("#prove-submit")
            page.wait_for_selector("#job-state[data-state='running']")
            assert error.is_hidden(), page.text_content("#error")
            job_id = page.text_content("#job-id") or ""
            page.wait_for_function("() => document.querySelectorAll('[data-testid=tree-node]').length >= 3")
            page.screenshot(path=str(shots / "1-proving-live.png"), full_page=True)
            page.wait_for_selector("#job-state[data-state='completed']", timeout=20_000)
            page.wait_for_selector("#verdict:not([hidden])")
            page.screenshot(path=str(shots / "2-proved.png"), full_page=True)

            live = [
                int(entry["value"])
                for entry in page.evaluate("window.__counters")
                if entry["state"] == "running" and entry["value"].isdigit()
            ]
            assert len(set(live)) >= 2, f"the expansion counter did not update live: {live}"
            assert live == sorted(live)

            job = server.client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
            assert job["state"] == "completed" and job["result"]["status"] == "proved"
            proof = page.text_content("#verdict-proof") or ""
            assert proof == job["result"]["proof"]
            assert "step" in proof and "done" in proof
            assert page.text_content("#verdict-status") == "proved"
            assert page.text_content("#verdict-judge") == job["result"]["judge"] == "repl"
            final_stats = job["result"]["stats"]
            assert page.text_content("#counter-expansions") == str(final_stats["expansions"])
            assert final_stats["expansions"] > STEPS
            assert page.text_content("#counter-nodes") == str(final_stats["nodes"])

            nodes = page.locator("[data-testid=tree-node]")
            assert nodes.count() >= 3
            # The hostile state is there, as text: no element was made from it, no handler ran.
            states = page.locator("[data-testid=tree-node-state]").all_text_contents()
            assert any(HOSTILE in text for text in states), states
            assert page.locator("#pwned").count() == 0
            assert page.evaluate("window.__pwned") is None

            # The jobs list shows it completed (the page refreshes the list when a job finishes).
            row = page.locator(f"[data-testid=job-row][data-job-id='{job_id}']")
            row.locator("[data-testid=job-row-state]").filter(has_text="completed").wait_for()
            assert row.locator("[data-testid=job-row-cancel]").count() == 0

            # Cancelling a long job from the jobs list.
            page.fill("#prove-statement", "theorem web_long : True := by")
            page.fill("#prove-expansions", "1000")
            page.click("#prove-submit")
            page.wait_for_function("(old) => document.getElementById('job-id').textContent !== old", arg=job_id)
            long_id = page.text_content("#job-id") or ""
            page.wait_for_function(
                "() => Number(document.getElementById('counter-expansions').textContent) >= 2", timeout=10_000
            )
            page.click("#jobs-refresh")
            long_row = page.locator(f"[data-testid=job-row][data-job-id='{long_id}']")
            long_row.locator("[data-testid=job-row-state]").filter(has_text="running").wait_for()
            page.screenshot(path=str(shots / "3-long-job-running.png"), full_page=True)
            long_row.locator("[data-testid=job-row-cancel]").click()
            page.wait_for_selector("#job-state[data-state='cancelled']", timeout=10_000)
            long_row.locator("[data-testid=job-row-state]").filter(has_text="cancelled").wait_for()
            page.screenshot(path=str(shots / "4-cancelled.png"), full_page=True)
            assert server.client.get(f"/v1/jobs/{long_id}").json()["state"] == "cancelled"

            # The formalize tab submits a formalize job. These backends build no text generator, so
            # no worker claims it: it stays queued, and the live view's cancel ends it at once.
            page.click("#tab-formalize")
            assert page.locator("#panel-prove").is_hidden()
            page.fill("#formalize-informal-statement", "Every natural number equals itself.")
            page.fill("#formalize-informal-proof", "By reflexivity.")
            page.fill("#formalize-formal-statement", "theorem web_refl (n : ℕ) : n = n := by")
            page.select_option("#formalize-language", "lean4")
            page.click("#formalize-submit")
            page.wait_for_selector("#job-kind:text-is('formalize')")
            formalize_id = page.text_content("#job-id") or ""
            request = server.client.get(f"/v1/jobs/{formalize_id}").json()["request"]
            assert request["informal_statement"] == "Every natural number equals itself."
            assert request["language"] == "lean4"
            page.click("#job-cancel")
            page.wait_for_selector("#job-state[data-state='cancelled']", timeout=10_000)

            # The state filter asks the server for completed jobs only.
            page.select_option("#jobs-state", "completed")
            page.wait_for_function(
                "() => { const rows = [...document.querySelectorAll('[data-testid=job-row]')];"
                " return rows.length === 1 && rows[0].dataset.state === 'completed'; }"
            )
            assert problems == [], problems
        finally:
            browser.close()
    print(f"browser part took {time.monotonic() - started:.1f} s")

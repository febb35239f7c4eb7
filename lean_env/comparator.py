"""The trusted final judge: the Lean FRO's comparator (github.com/leanprover/comparator).

Why a second judge at all: the REPL check (`lean_env.verification`) reads the verdict off a Lean
process that elaborated the untrusted proof text, so a proof able to run code during elaboration
could in principle shape what that process reports. Comparator's verdict comes from a process that
never elaborates the solution: it builds the trusted challenge (the statement with `sorry`) and the
solution in a `landrun` sandbox, exports both with `lean4export`, checks that every listed theorem
has the same statement in both, that the solution uses only permitted axioms, and replays the
solution's exported declarations into the Lean kernel (optionally also nanoda's kernel).

`ComparatorJudge.judge(problem, proof)` does one check from scratch:
1. a fresh work directory `<project>/.lake/comparator/<name>-<id>/`, a Lake package of its own whose
   `packagesDir` is the project's (so Mathlib's existing build is reused, nothing is fetched) and whose
   only libraries are `Challenge` and `Solution`;
2. `Challenge.lean` = header + trusted statement + `by sorry`; `Solution.lean` = header + statement +
   proof (both rendered by `lean_syntax.LEAN`, the Lean backend's own syntax rules);
3. `config.json` naming the modules, the theorem, the permitted axioms and a JSON report path outside
   the sandbox's writable `.lake`;
4. `lake env <comparator> config.json` in that directory, in its own process group, killed as a group
   on timeout. Comparator itself runs `lake build` on both modules (inside landrun): we never build the
   solution ourselves, since that would elaborate untrusted text outside the sandbox.

The verdict is `VALID` only when comparator exits 0 and its JSON report (which the sandboxed build
cannot write) says the kernel accepted and no target failed. Nothing printed by the builds (which
the solution controls) is trusted for acceptance; output is only used to say why a check failed.
Infrastructure failures (a tool missing, the trusted challenge not building) raise `BackendCrashed`
instead of rejecting a possibly good proof.

Pinned revisions: see `COMPARATOR_REV` and the note above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lean_env.errors import BackendCrashed, BackendStartError, MissingDependency
from lean_env.lean_syntax import LEAN
from lean_env.types import STANDARD_AXIOMS, Judge, Problem, VerifyResult, VerifyStatus

logger = logging.getLogger(__name__)

COMPARATOR_REPO_URL = "https://github.com/leanprover/comparator"
LEAN4EXPORT_REPO_URL = "https://github.com/leanprover/lean4export"
LANDRUN_REPO_URL = "https://github.com/Zouuup/landrun"

# Compatibility. Comparator reads lean4export's NDJSON export format (its `Export.Parse`), which
# lean4export adopted in January 2026 (lean4export PR #10), after Lean v4.24.0 (October 2025); an
# exporter must be built with the toolchain that wrote the .olean files it reads, and comparator's
# own toolchain bumps (its tracker) begin in the v4.30 cycle. We found no comparator + lean4export
# pair for v4.24.0. The nearest toolchain with a published pair is v4.30.0-rc2: comparator at the
# merge commit of comparator#35 (definition holes) and lean4export at its `v4.30.0-rc2` tag, the
# pair leanprover/lean-eval#22 pins together. landrun has no toolchain; comparator's README asks for
# its `main` branch. `prover setup` builds these only for a project on `COMPARATOR_TOOLCHAIN`.
COMPARATOR_TOOLCHAIN = "leanprover/lean4:v4.30.0-rc2"
COMPARATOR_REV = "71b52ec29e06d4b7d882726553b1ceb99a2499e0"
LEAN4EXPORT_REV = "v4.30.0-rc2"
LANDRUN_REV = "main"

COMPARATOR_FOLDER = "comparator"
"""Where, under the data directory, `prover setup` keeps the three checkouts and their binaries."""
WORK_FOLDER = Path(".lake") / "comparator"
"""Where, inside the Lake project, each check gets its own work directory."""
REPORT_FILE = "comparator-report.json"
_INSTALL_HINT = (
    "Run `prover setup` (it builds comparator, lean4export and landrun when the project's toolchain is "
    f"{COMPARATOR_TOOLCHAIN}), point [lean.comparator] at existing binaries, or set "
    "lean.comparator.enabled = 'off' to keep the REPL judge."
)


class ComparatorSettings(BaseModel):
    """The `[lean.comparator]` section: whether and how the final judge runs."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: Literal["auto", "on", "off"] = "auto"
    """`auto`: judge every reported proof with comparator when it is installed, else with the REPL alone;
    `on`: require it (a missing tool is an error naming how to install it); `off`: the REPL judge only."""
    comparator_path: Path | None = None
    """The comparator binary; None: the one `prover setup` builds under `<data_dir>/comparator`."""
    lean4export_path: Path | None = None
    """The lean4export binary (built with the project's toolchain); None: under `<data_dir>/comparator`."""
    landrun_path: Path | None = None
    """The landrun sandbox binary; None: under `<data_dir>/comparator`."""
    nanoda_path: Path | None = None
    """nanoda's `nanoda_bin`, needed only with `enable_nanoda`."""
    enable_nanoda: bool = False
    """Also replay the solution in the nanoda kernel (a second, independent kernel)."""
    timeout_s: float = Field(default=900.0, gt=0)
    """Wall-clock limit of one comparator run (two sandboxed `lake build`s, two exports, a kernel replay)."""
    concurrency: int = Field(default=2, ge=1)
    """Comparator runs at once: each imports the project's dependencies twice (Mathlib: several GB)."""
    permitted_axioms: list[str] = Field(default_factory=lambda: sorted(STANDARD_AXIOMS))
    """Axioms a judged proof may depend on."""
    wrapper: list[str] = Field(default_factory=list)
    """A command put in front of `lake env comparator ...`, e.g. comparator README's
    `systemd-run --user --pty --property=RestrictAddressFamilies=~AF_UNIX -E PATH=... --`."""
    keep_work_dirs: bool = False
    """Keep each check's work directory (for debugging) instead of deleting it."""


@dataclass(frozen=True, slots=True)
class ComparatorTools:
    """Where the judge's binaries are. `nanoda` is None unless nanoda is enabled."""

    comparator: Path
    lean4export: Path
    landrun: Path
    nanoda: Path | None = None

    def missing(self) -> list[str]:
        """Human-readable names of the binaries that are absent or not executable."""
        wanted = [("comparator", self.comparator), ("lean4export", self.lean4export), ("landrun", self.landrun)]
        if self.nanoda is not None:
            wanted.append(("nanoda_bin", self.nanoda))
        return [f"{name} ({path})" for name, path in wanted if not (path.is_file() and os.access(path, os.X_OK))]


def tools_root(data_dir: Path) -> Path:
    """The folder `prover setup` builds the judge's tools in."""
    return Path(data_dir) / COMPARATOR_FOLDER


def default_tools(data_dir: Path) -> ComparatorTools:
    """The binaries as `prover setup` lays them out under `<data_dir>/comparator`."""
    root = tools_root(data_dir)
    return ComparatorTools(
        comparator=root / "comparator" / ".lake" / "build" / "bin" / "comparator",
        lean4export=root / "lean4export" / ".lake" / "build" / "bin" / "lean4export",
        landrun=root / "landrun" / "landrun",
    )


def resolve_tools(settings: ComparatorSettings, data_dir: Path) -> ComparatorTools:
    """The configured binaries, each defaulting to `default_tools(data_dir)`."""
    default = default_tools(data_dir)
    return ComparatorTools(
        comparator=settings.comparator_path or default.comparator,
        lean4export=settings.lean4export_path or default.lean4export,
        landrun=settings.landrun_path or default.landrun,
        nanoda=(settings.nanoda_path or Path("nanoda_bin")) if settings.enable_nanoda else None,
    )


def require_tools(tools: ComparatorTools) -> None:
    """Raise `MissingDependency` naming every absent binary and how to get it."""
    missing = tools.missing()
    if missing:
        raise MissingDependency("the comparator judge: " + ", ".join(missing), _INSTALL_HINT)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise BackendStartError(f"comparator work project: cannot write {value!r} into a lakefile")


class ComparatorJudge:
    """Runs comparator on one proof at a time (up to `settings.concurrency` at once) in a Lake project.

    `project_dir` is the Lake project the problems are stated in (a `lakefile.toml` project, built, on
    the toolchain the tools were built with). `lake` is the argv prefix that runs Lake (`[".../lake"]`);
    empty runs the comparator binary directly (a stand-in needs no Lake). `environment` is the
    environment the tools run with (the entry point's); None inherits this process's.
    """

    def __init__(
        self,
        settings: ComparatorSettings,
        project_dir: Path,
        tools: ComparatorTools,
        *,
        lake: Sequence[str] = (),
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.project_dir = Path(project_dir)
        self.tools = tools
        self.lake = tuple(lake)
        self._environment = dict(environment) if environment is not None else None
        self._slots = asyncio.Semaphore(settings.concurrency)

    @property
    def name(self) -> str:
        return Judge.COMPARATOR.value

    # --- the work project -----------------------------------------------------------------------

    def _requires(self) -> list[dict[str, Any]]:
        lakefile = self.project_dir / "lakefile.toml"
        try:
            config = tomllib.loads(lakefile.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise BackendStartError(
                f"the comparator judge needs a lakefile.toml project; {lakefile} does not exist"
            ) from error
        requires = config.get("require", [])
        return [dict(item) for item in requires if isinstance(item, dict)]

    def _write_project(self, work: Path, problem: Problem, proof: str, theorem: str) -> Path:
        packages = self.project_dir / ".lake" / "packages"
        lines = ['name = "ProverJudge"', f"packagesDir = {_toml_value(os.path.relpath(packages, work))}", ""]
        for require in self._requires():
            lines.append("[[require]]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in require.items()]
            lines.append("")
        lines += ['[[lean_lib]]\nname = "Challenge"\n', '[[lean_lib]]\nname = "Solution"\n']
        (work / "lakefile.toml").write_text("\n".join(lines), encoding="utf-8")
        toolchain = self.project_dir / "lean-toolchain"
        if toolchain.is_file():
            shutil.copyfile(toolchain, work / "lean-toolchain")
        manifest = self.project_dir / "lake-manifest.json"
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            data["name"] = "ProverJudge"
            data["packagesDir"] = os.path.relpath(packages, work)
            (work / "lake-manifest.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        (work / "Challenge.lean").write_text(LEAN.proof_file(problem, "by sorry"), encoding="utf-8")
        solution = LEAN.proof_file(problem, proof)
        (work / "Solution.lean").write_text(solution, encoding="utf-8")
        config = {
            "challenge_module": "Challenge",
            "solution_module": "Solution",
            "theorem_names": [theorem],
            "permitted_axioms": list(self.settings.permitted_axioms),
            "enable_nanoda": self.settings.enable_nanoda,
            "json_output_path": REPORT_FILE,
        }
        (work / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        return work / "config.json"

    def _env(self) -> dict[str, str]:
        # The tools run with the entry point's environment (PATH finds `lean`, `git`), plus where ours are.
        base = self._environment if self._environment is not None else dict(os.environ)
        env = {
            **base,
            "COMPARATOR_LANDRUN": str(self.tools.landrun),
            "COMPARATOR_LEAN4EXPORT": str(self.tools.lean4export),
        }
        if self.tools.nanoda is not None:
            env["COMPARATOR_NANODA"] = str(self.tools.nanoda)
        return env

    # --- one check ------------------------------------------------------------------------------

    async def judge(self, problem: Problem, proof: str, timeout: float | None = None) -> VerifyResult:
        """Comparator's verdict on `proof` for `problem`, from scratch, with `judge="comparator"`.

        Never raises for a bad proof. Raises `MissingDependency` when a tool is absent and
        `BackendCrashed` when comparator fails for a reason that is not the proof's (the trusted
        challenge did not build, a tool could not run, its report is unreadable).
        """
        require_tools(self.tools)
        limit = timeout if timeout is not None else self.settings.timeout_s
        async with self._slots:
            return await self._judge(problem, proof, limit)

    async def _judge(self, problem: Problem, proof: str, limit: float) -> VerifyResult:
        started = time.monotonic()
        theorem = LEAN.declaration_name(problem)
        root = self.project_dir / WORK_FOLDER
        safe = "".join(char if char.isalnum() or char in "_-" else "_" for char in problem.name)[:60]
        work = root / f"{safe}-{uuid.uuid4().hex[:10]}"
        work.mkdir(parents=True)
        try:
            config = self._write_project(work, problem, proof, theorem)
            solution = (work / "Solution.lean").read_text(encoding="utf-8")
            argv = [*self.settings.wrapper, *self.lake, *(["env"] if self.lake else []), str(self.tools.comparator)]
            argv.append(config.name)
            code, output = await self._run(argv, work, limit)
            seconds = time.monotonic() - started
            if code is None:
                return VerifyResult(
                    VerifyStatus.TIMEOUT,
                    reason=f"comparator did not finish within {limit:g} s",
                    checked_text=solution,
                    seconds=seconds,
                    judge=Judge.COMPARATOR.value,
                )
            report = self._read_report(work / REPORT_FILE)
            return _verdict(code, output, report, solution, seconds)
        finally:
            if not self.settings.keep_work_dirs:
                shutil.rmtree(work, ignore_errors=True)

    async def _run(self, argv: list[str], cwd: Path, limit: float) -> tuple[int | None, str]:
        """(exit status, stdout + stderr); status None when it ran past `limit` (its group is killed)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=self._env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: lake, landrun and lean die with it
            )
        except OSError as error:
            raise BackendCrashed(f"could not start comparator ({argv[0]}): {error}") from error
        try:
            stdout, _ = await asyncio.wait_for(process.communicate(), timeout=limit)
        except TimeoutError:
            _kill_group(process.pid)
            with contextlib.suppress(Exception):
                await process.wait()
            return None, ""
        except asyncio.CancelledError:
            _kill_group(process.pid)
            raise
        _kill_group(process.pid)  # descendants that outlived comparator (a sandboxed build) go too
        return process.returncode, stdout.decode("utf-8", errors="replace")

    @staticmethod
    def _read_report(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            raise BackendCrashed(f"comparator wrote an unreadable report {path.name}: {error}") from error
        return data if isinstance(data, dict) else None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(output: str, lines: int = 12) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])


def _verdict(code: int, output: str, report: dict[str, Any] | None, solution: str, seconds: float) -> VerifyResult:
    """Map comparator's exit status, report and output to a verdict (see the module docstring)."""
    common: dict[str, Any] = {
        "checked_text": solution,
        "seconds": seconds,
        "judge": Judge.COMPARATOR.value,
        "messages": tuple(output.strip().splitlines()[-20:]),
    }
    targets = [item for item in (report or {}).get("reports", []) if isinstance(item, dict)]
    axioms = tuple(sorted({str(a) for item in targets for a in item.get("transitiveAxioms", []) or []}))
    failed = [item for item in targets if item.get("failureCategory")]
    if code == 0 and report is not None and report.get("kernelAccepted") is True and not failed:
        if report.get("nanodaAccepted") is False:
            return VerifyResult(VerifyStatus.LEAN_ERROR, reason="nanoda rejected the solution", axioms=axioms, **common)
        return VerifyResult(VerifyStatus.VALID, axioms=axioms, **common)
    if code == 0:
        # Exit 0 without a report saying so: never accept on the word of output the solution could print.
        return VerifyResult(
            VerifyStatus.BACKEND_ERROR,
            reason="comparator exited 0 but its report does not record an accepted kernel replay",
            axioms=axioms,
            **common,
        )
    if failed:
        item = failed[0]
        message = f"{item.get('target')}: {item.get('failureMessage') or item.get('failureCategory')}"
        if item.get("failureCategory") == "comparison":
            return VerifyResult(
                VerifyStatus.STATEMENT_CHANGED, reason=f"comparator: statement differs ({message})", **common
            )
        unpermitted = tuple(str(a) for a in item.get("unpermittedAxioms", []) or [])
        status = VerifyStatus.SORRY if "sorryAx" in unpermitted else VerifyStatus.NONSTANDARD_AXIOMS
        reason = f"comparator: axioms not permitted: {', '.join(unpermitted) or message}"
        return VerifyResult(status, reason=reason, axioms=axioms, **common)
    if report is not None and report.get("kernelAccepted") is False:
        why = report.get("kernelFailureMessage") or "no message"
        return VerifyResult(VerifyStatus.LEAN_ERROR, reason=f"comparator: the kernel rejected it: {why}", **common)
    if report is not None and report.get("nanodaAccepted") is False:
        why = report.get("nanodaFailureMessage") or "no message"
        return VerifyResult(VerifyStatus.LEAN_ERROR, reason=f"comparator: nanoda rejected it: {why}", **common)
    lines = output.splitlines()
    reached_solution = any(line.strip() == "Building Solution" for line in lines)
    if reached_solution:
        return VerifyResult(
            VerifyStatus.LEAN_ERROR,
            reason=f"comparator: the solution does not build or export:\n{_tail(output)}",
            **common,
        )
    raise BackendCrashed(f"comparator failed before judging the solution (exit {code}):\n{_tail(output)}")

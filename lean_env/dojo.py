"""The LeanDojo backend: theorems in a repository traced by lean-dojo 4.20 (Lean v4.3.0-rc2 to about v4.20).

A theorem is named by its place in a traced repository (`DojoLocation`: repository URL, commit,
file, full name). (`rah4927/lean-dojo-mew` at d00c776, the project the Llemma paper evaluated
miniF2F in, is on a 2023 Lean this LeanDojo cannot trace; see Versions.) `DojoLeanEnv.start`
opens one LeanDojo `Dojo` per theorem and drives it from a thread of its own; `verify` re-checks
the whole file with `lake env lean` inside the traced repository.

Versions. Written against lean-dojo 4.20.0 (the `dojo` extra pins it), whose `trace` supports repos
on Lean v4.3.0-rc2 up to about v4.20. The adapter also accepts the 1.x API (`hard_timeout`,
`DojoHardTimeoutError`) that the Llemma runs used (LeanDojo 1.1.2). `lean-dojo-mew` pins Lean
`nightly-2023-08-19`, older than 4.20.0 can trace or drive (a 1.x trace has no `Lean4Repl.lean`), so the
adapter refuses it with a message: this backend does not reproduce the Llemma runs' LeanDojo setup.
Repositories on newer Lean (the miniF2F project under `miniF2F/`, v4.24.0) go through the REPL backend.

How LeanDojo's behaviour maps onto ours:
- `TacticState` -> `Progress`, `ProofFinished` -> `ProofClosed`, `LeanError` -> `TacticError(LEAN_ERROR)`,
  `ProofGivenUp` -> `TacticError(USED_SORRY)`.
- `DojoTacticTimeoutError` -> `TacticError(TIMEOUT)`. That `Dojo` is discarded (a Lean process that
  timed out keeps timing out, LeanDojo issue 218); the next tactic opens a new one and replays the
  tactic path to the state it was asked about.
- `DojoCrashError` -> the `Dojo` is restarted and the path replayed; `BackendCrashed` if it crashes again.
- `DojoInitError` (or anything else `Dojo.__enter__` raises) -> `BackendStartError`, after killing
  the lake/lean processes it left behind (`__exit__` never runs when `__enter__` fails).
- LeanDojo reads its settings from environment variables once, at import. They are set from
  `DojoConfig` right before the first `import lean_dojo`, never when this module is imported.
Known trap left to the user: `Dojo.__enter__` deletes `lakefile.olean` in the process's working directory.

What lean-dojo 4.20.0 does that this adapter works around (each pinned by a test in tests/lean_env/test_dojo.py):
- `LeanGitRepo(url, commit)` for a GitHub URL asks the GitHub API for the repository and downloads its
  `lean-toolchain` on every construction (`data_extraction/lean.py`, `LeanGitRepo.__post_init__`), so a
  machine with the trace in its cache still fails offline. When the trace is in the cache, the repository
  object is built from the cache alone (`_offline_repo`: the fields `Dojo` reads, the Lean version from the
  traced copy's `lean-toolchain`), never touching the network; every repository object is built once per
  (url, commit) and reused.
- `working_directory` (`utils.py`) changes the process-wide working directory with `os.chdir`; `Dojo.__enter__`
  spawns Lean inside it and tracing runs in it, so opens on several threads race. `import_lean_dojo` replaces
  LeanDojo's module-level `working_directory` with one that holds a process-wide lock while inside.
- There is no cap on Dojo processes: `DojoConfig.max_dojos` (default from RAM and cores) bounds the sessions
  open at once; further `start`s wait for a slot.
- `get_traced_repo_path` traces a repository missing from the cache (an hour or more, no timeout). The adapter
  refuses an untraced repository, naming the command that traces it, unless `DojoConfig.allow_trace`.
- A repository whose `lean-toolchain` fails LeanDojo's own `is_supported_version` (`lean-dojo-mew`'s
  `nightly-2023-08-19`), or a trace without `Lean4Repl.lean` (made by LeanDojo before 2.0, which `Dojo.__enter__`
  asserts on), is refused with a message instead of failing deep inside LeanDojo.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lean_env import lean_syntax
from lean_env.errors import BackendCrashed, BackendStartError, HoleUnavailable, MissingDependency
from lean_env.gitinfo import git_head
from lean_env.guard import check_statement_text, check_tactic_text
from lean_env.lean_syntax import LEAN, LeanSyntax
from lean_env.repl.config import total_memory_bytes as machine_memory_bytes
from lean_env.types import (
    CheckResult,
    Hole,
    InvalidStatement,
    LeanMessage,
    Position,
    Problem,
    Progress,
    ProofClosed,
    ProofState,
    Severity,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
    VerifyResult,
    VerifyStatus,
)
from lean_env.verification import build_check_file, judge, normalize_statement, precheck

logger = logging.getLogger(__name__)

_MEMORY_LIMIT = re.compile(r"\d+g")


@dataclass(frozen=True, slots=True)
class DojoLocation:
    """Where a theorem lives in a LeanDojo-traced repository: this backend's own way to name a problem."""

    repo_url: str
    commit: str
    file_path: str
    full_name: str


DojoLocator = Callable[[Problem], DojoLocation] | Mapping[str, DojoLocation]
"""How `DojoLeanEnv` finds a problem's place in a traced repository: a function, or a mapping by problem name."""

_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
"""Where `prover setup` checks out upstream repositories (`data/lean-dojo-mew`, ...)."""


class DojoConfigError(ValidationError):
    """An invalid `DojoConfig` field; the message reads `DojoConfig.<field>: <problem> (got <value>)`.

    A `ValidationError`, so settings embedding `DojoConfig` report the field's full path (`lean.dojo.cpu_limit`).
    """

    def __str__(self) -> str:
        return "; ".join(
            f"{self.title}.{'.'.join(str(p) for p in issue['loc'])}: {issue['msg']} (got {issue.get('input')!r})"
            for issue in self.errors()
        )


class DojoConfig(BaseModel):
    """How to run LeanDojo; also the `[lean.dojo]` section of the application's settings.

    Constructing one with an invalid value raises `ValueError` naming the field (`DojoConfig.cpu_limit: ...`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    cache_dir: Path | None = None
    """LeanDojo's `CACHE_DIR` (traced repositories); None keeps LeanDojo's default (`~/.cache/lean_dojo`)."""
    timeout_s: float = Field(default=600.0, gt=0)
    """Deadline of one interaction that is not a tactic (opening a `Dojo`, which elaborates the file's imports)."""
    cpu_limit: int = Field(default=1, ge=1)
    """LeanDojo's `TACTIC_CPU_LIMIT`, passed to `lean --threads`."""
    memory_limit: str = "16g"
    """LeanDojo's `TACTIC_MEMORY_LIMIT` (`"16g"`: digits then `g`), passed to `lean --memory`."""
    disable_remote_cache: bool = False
    """Never download traces from LeanDojo's remote cache (needed offline)."""
    num_procs: int | None = Field(default=None, ge=1)
    """LeanDojo's `NUM_PROCS` (processes used when tracing); None keeps LeanDojo's default."""
    tmp_dir: Path | None = None
    """LeanDojo's `TMP_DIR`; None keeps LeanDojo's default."""
    lean_command: tuple[str, ...] = Field(default=("lake", "env", "lean"), min_length=1)
    """How the whole-file check runs Lean inside the traced repository."""
    crash_restarts: int = Field(default=1, ge=0)
    """How many times one tactic may restart a crashed `Dojo` before `BackendCrashed`."""
    max_dojos: int | None = Field(default=None, ge=1)
    """At most this many sessions (each one `lake env lean` process of up to `memory_limit`) open at once;
    further `start`s wait. None: total RAM / `memory_limit`, at least 1, at most the number of cores."""
    allow_trace: bool = False
    """Let LeanDojo trace (or download from its remote cache) a repository missing from `cache_dir`. Tracing
    a Mathlib-sized repository takes an hour or more and 32+ GB of RAM, with no timeout; off, such a repository
    is refused with the command that traces it."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            details: Any = error.errors()
            raise DojoConfigError.from_exception_data(error.title, details) from None

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit_format(cls, value: str) -> str:
        if not _MEMORY_LIMIT.fullmatch(value):
            raise ValueError(f"{value!r} must look like '16g' (LeanDojo's format)")
        return value

    @field_validator("lean_command", mode="before")
    @classmethod
    def _lean_command_is_an_argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a sequence of strings (the argv), not one string")
        return value

    def dojo_slots(self, total_memory_bytes: int | None = None, cores: int | None = None) -> int:
        """How many Dojo sessions may be open at once: `max_dojos`, else RAM / `memory_limit` within [1, cores]."""
        if self.max_dojos is not None:
            return self.max_dojos
        total = machine_memory_bytes() if total_memory_bytes is None else total_memory_bytes
        per_dojo = int(self.memory_limit[:-1]) * 2**30
        cores = (os.cpu_count() or 1) if cores is None else cores
        return max(1, min(cores, total // max(per_dojo, 1)))

    def environment(self) -> dict[str, str]:
        """The environment variables LeanDojo reads at import, as this config sets them."""
        values = {"TACTIC_CPU_LIMIT": str(self.cpu_limit), "TACTIC_MEMORY_LIMIT": self.memory_limit}
        if self.cache_dir is not None:
            values["CACHE_DIR"] = str(Path(self.cache_dir).expanduser().absolute())
        if self.disable_remote_cache:
            values["DISABLE_REMOTE_CACHE"] = "1"
        if self.num_procs is not None:
            values["NUM_PROCS"] = str(self.num_procs)
        if self.tmp_dir is not None:
            values["TMP_DIR"] = str(Path(self.tmp_dir).expanduser().absolute())
        return values


_IMPORT_LOCK = threading.Lock()
_IMPORTED_WITH: dict[str, str] | None = None


def import_lean_dojo(config: DojoConfig) -> ModuleType:
    """Set LeanDojo's environment variables from `config`, then import it (once per process).

    LeanDojo reads its settings only at import; a later call with different settings logs a warning
    and keeps the first ones. Raises `MissingDependency` when lean-dojo is not installed.
    """
    global _IMPORTED_WITH
    wanted = config.environment()
    with _IMPORT_LOCK:
        if _IMPORTED_WITH is None:
            if "lean_dojo" in sys.modules:
                logger.warning(
                    "lean_dojo was imported before DojoConfig could set its environment; %s is ignored", wanted
                )
            # This is the one place that writes LeanDojo's settings, right before its import reads them.
            os.environ.update(wanted)
            _IMPORTED_WITH = wanted
        elif wanted != _IMPORTED_WITH:
            logger.warning(
                "LeanDojo was already imported with %s; it reads its settings once, so %s is ignored",
                _IMPORTED_WITH,
                wanted,
            )
        try:
            import lean_dojo
        except ImportError as error:
            raise MissingDependency(
                "LeanDojo (the lean-dojo package)", "Install it with `pip install -e '.[dojo]'` (lean-dojo==4.20.0)."
            ) from error
        _serialise_working_directory()
    return lean_dojo


CWD_LOCK = threading.RLock()
"""Held while LeanDojo's `working_directory` has changed the process's working directory (`os.chdir`).

Re-entrant: tracing nests one `working_directory` in another on the same thread. Code of this process that
depends on the working directory while Dojos open on other threads should hold it too."""

_WORKING_DIRECTORY_USERS = (
    "lean_dojo.utils",
    "lean_dojo.interaction.dojo",
    "lean_dojo.data_extraction.trace",
    "lean_dojo.data_extraction.lean",
    "lean_dojo.data_extraction.traced_data",
)


def _serialise_working_directory() -> None:
    """Replace LeanDojo's `working_directory` (an `os.chdir` context manager) with one that holds `CWD_LOCK`.

    Each LeanDojo module imported it by name (`from ..utils import working_directory`), so the name is
    replaced in every module that holds it. Idempotent.
    """
    for name in _WORKING_DIRECTORY_USERS:
        module = sys.modules.get(name)
        original = getattr(module, "working_directory", None) if module is not None else None
        if module is None or original is None or getattr(original, "serialised_by_prover", False):
            continue
        setattr(module, "working_directory", _locked(original))  # noqa: B010 (a module attribute mypy cannot see)


def _locked(original: Callable[..., Any]) -> Callable[..., Any]:
    @contextlib.contextmanager
    def working_directory(path: Any = None) -> Any:
        with CWD_LOCK, original(path) as where:
            yield where

    working_directory.serialised_by_prover = True  # type: ignore[attr-defined]
    working_directory.original = original  # type: ignore[attr-defined]
    return working_directory


# --- reading theorems from traced repositories --------------------------------------------------


class DojoLocationError(ValueError):
    """A `DojoLocation` or a statement given with it does not match the repository's file."""


def locate_theorem(source: str, full_name: str) -> tuple[str, str]:
    """Split a Lean file at the theorem `full_name`: (header, statement ending in `:= by`).

    The header is the whole file text before the theorem's keyword (attributes and modifiers stay
    in it; LeanDojo checks a theorem in the context of everything above it). The file is read with
    `lean_env.lean_syntax`, so comments and strings never count. Raises `DojoLocationError` when
    there is no such theorem or it has no `:=`.
    """
    short = full_name.rsplit(".", 1)[-1]
    scan = lean_syntax.mask(source)
    for declaration in lean_syntax.declarations(source):
        name = declaration.name.replace("«", "").replace("»", "")
        if name not in (short, full_name) and not full_name.endswith("." + name):
            continue
        if declaration.signature_end < 0:
            raise DojoLocationError(f"theorem {full_name} has no `:=` LeanDojo could replace the proof after")
        keyword = _KEYWORD.search(scan, declaration.start)
        start = keyword.start() if keyword is not None else declaration.start
        return source[:start], source[start : declaration.signature_end] + " by"
    raise DojoLocationError(f"no theorem named {full_name} in the file")


_KEYWORD = re.compile(r"\b(?:theorem|lemma)\b")


def _same_commit(head: str | None, commit: str) -> bool:
    return head is not None and len(commit) >= 7 and (head.startswith(commit) or commit.startswith(head))


def _repo_name(url: str) -> str:
    return url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]


def find_source(location: DojoLocation, roots: Iterable[Path] = (), cache_dir: Path | None = None) -> Path | None:
    """The file of `location` at its commit, if a copy is on this machine.

    Looked for, in order: the repository itself when `repo_url` is a local checkout, `<root>/<repo name>`
    for each of `roots` (where `prover setup` checks out upstream data), and LeanDojo's cache of
    traced repositories (`cache_dir`, default `~/.cache/lean_dojo`). Checkouts count only at `commit`.
    """
    name = _repo_name(location.repo_url)
    candidates: list[Path] = []
    local = Path(location.repo_url).expanduser()
    if local.is_dir():
        candidates.append(local)
    candidates.extend(Path(root) / name for root in roots)
    for directory in candidates:
        path = directory / location.file_path
        if path.is_file() and _same_commit(git_head(directory), location.commit):
            return path
    cache = Path(cache_dir).expanduser() if cache_dir is not None else Path.home() / ".cache" / "lean_dojo"
    if cache.is_dir():
        for traced in sorted(cache.glob(f"*-{name}-{location.commit}*/{name}")):
            path = traced / location.file_path
            if path.is_file():
                return path
    return None


def theorem_from_location(
    location: DojoLocation,
    statement: str | None = None,
    *,
    source_roots: Sequence[Path] | None = None,
    cache_dir: Path | None = None,
) -> Problem:
    """The `Problem` at `location`, its statement and header read from the repository's file.

    The file is found with `find_source` (default roots: the repository's `data/` folder filled by
    `prover setup`). `statement`, when given, must be the file's statement up to whitespace; when the
    file is nowhere on this machine it is used as given (with an empty header: the dojo backend's
    `verify` reads the header from the traced repository anyway). Raises `MissingDependency` when
    neither is available and `DojoLocationError` for a statement that is malformed or does not match.
    The problem carries no location (the caller has it and gives it to `DojoLeanEnv(locate=...)`);
    its `upstream` names the repository, commit and file.
    """
    if statement is not None:
        statement = statement.strip()
        if not statement.endswith(":= by"):
            statement = statement.removesuffix(":=").rstrip() + " := by"
        problem = check_statement_text(statement)
        if problem is not None:
            raise DojoLocationError(problem)
    roots = [_DATA_DIR] if source_roots is None else list(source_roots)
    source = find_source(location, roots, cache_dir)
    if source is None:
        if statement is None:
            raise MissingDependency(
                f"the source of {location.file_path} at {location.repo_url}@{location.commit[:7]}",
                "Run `prover setup` (it checks out lean-dojo-mew into data/), trace the repository with "
                "LeanDojo, or pass the statement with --statement.",
            )
        return Problem(name=location.full_name, header="", formal_statement=statement, upstream=_upstream(location))
    header, found = locate_theorem(source.read_text(encoding="utf-8"), location.full_name)
    if statement is not None and normalize_statement(statement) != normalize_statement(found):
        raise DojoLocationError(
            f"the statement given differs from the one in {location.file_path}: {normalize_statement(found)[:200]}"
        )
    return Problem(name=location.full_name, header=header, formal_statement=found, upstream=_upstream(location))


def _upstream(location: DojoLocation) -> str:
    return f"{location.repo_url}@{location.commit}:{location.file_path}"


# --- Lean's command-line output ------------------------------------------------------------------

_MESSAGE_START = re.compile(
    r"^(?:(?P<file>[^\n]*?):(?P<line>\d+):(?P<column>\d+): )?"
    r"(?P<severity>error|warning|info|information|trace)(?:\([^)\n]*\))?: ?(?P<text>.*)$"
)
_AXIOMS_LINE = re.compile(r"^'.*' (?:depends on axioms|does not depend on any axioms)")
_SEVERITIES = {"information": Severity.INFO, "info": Severity.INFO}


def parse_lean_output(output: str) -> list[LeanMessage]:
    """Messages from what `lean FILE` printed: `file:line:col: severity: text` plus continuation lines.

    Lean's command line prints info messages without a position in some versions; an unprefixed
    `#print axioms` answer is therefore taken as a message of its own.
    """
    messages: list[LeanMessage] = []
    current: dict[str, Any] | None = None

    def flush() -> None:
        if current is not None:
            text = "\n".join(current["lines"]).rstrip()
            messages.append(LeanMessage(current["severity"], text, current["line"], current["column"]))

    for raw in output.splitlines():
        match = _MESSAGE_START.match(raw)
        if match is not None:
            flush()
            severity = _SEVERITIES.get(match.group("severity")) or Severity(match.group("severity"))
            current = {
                "severity": severity,
                "line": int(match.group("line") or 0),
                "column": int(match.group("column") or 0),
                "lines": [match.group("text")],
            }
        elif _AXIOMS_LINE.match(raw) or current is None:
            if not raw.strip() and current is None:
                continue
            flush()
            current = {"severity": Severity.INFO, "line": 0, "column": 0, "lines": [raw]}
        else:
            current["lines"].append(raw)
    flush()
    return messages


_SORRY = re.compile(r"(?<![\w.'!?])sorry(?![\w'!?])")


def _holes(text: str) -> list[Hole]:
    """The `sorry`s of `text` outside comments and strings, as holes without goals or states."""
    holes: list[Hole] = []
    for match in _SORRY.finditer(lean_syntax.mask(text)):
        start = _position(text, match.start())
        end = _position(text, match.end())
        holes.append(Hole(index=len(holes), goal="", state=ProofState.from_goals([]), start=start, end=end))
    return holes


def _position(text: str, index: int) -> Position:
    line_start = text.rfind("\n", 0, index) + 1
    return Position(text.count("\n", 0, index) + 1, index - line_start)


# --- processes -------------------------------------------------------------------------------------


def _kill_process_tree(pid: int) -> None:
    """Kill `pid`, its process group when it leads its own, and every descendant still alive."""
    victims: list[Any] = []
    try:
        root = psutil.Process(pid)
        victims = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        group = os.getpgid(pid)
        if group == pid and group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            victim.kill()
    psutil.wait_procs(victims, timeout=5)


def _kill_dojo_processes(dojo: Any) -> None:
    """Kill the lake/lean processes a `Dojo` spawned and delete its rewritten copy of the file."""
    proc = getattr(dojo, "proc", None)
    pid = getattr(proc, "pid", None)
    if isinstance(pid, int) and pid > 0:
        _kill_process_tree(pid)
        with contextlib.suppress(Exception):
            proc.close(force=True)  # type: ignore[union-attr]
    modified = getattr(dojo, "modified_file", None)
    if modified is not None:
        with contextlib.suppress(Exception):
            modified.__exit__(None, None, None)


def _find_program(name: str) -> str:
    """`name` as given, or elan's copy in `~/.elan/bin` when a bare `lake` is not on PATH."""
    if os.sep in name or shutil.which(name):
        return name
    elan_copy = Path.home() / ".elan" / "bin" / name
    return str(elan_copy) if elan_copy.is_file() else name


# --- the backend -------------------------------------------------------------------------------------

DojoFactory = Callable[[DojoLocation, float], Any]
"""Builds an un-entered `Dojo` (a context manager) for a location and a per-interaction timeout."""


def _real_dojo_factory(config: DojoConfig, repos: TracedRepos | None = None) -> DojoFactory:
    repos = repos or TracedRepos(config)

    def build(location: DojoLocation, timeout: float) -> Any:
        lean_dojo = import_lean_dojo(config)
        repo = repos.repo(location)
        theorem = lean_dojo.Theorem(repo, location.file_path, location.full_name)
        seconds = max(1, math.ceil(timeout))
        parameters = inspect.signature(lean_dojo.Dojo).parameters
        if "timeout" in parameters:
            return lean_dojo.Dojo(theorem, timeout=seconds)
        if "hard_timeout" in parameters:  # LeanDojo 1.x
            return lean_dojo.Dojo(theorem, hard_timeout=seconds)
        return lean_dojo.Dojo(theorem)

    return build


def _real_traced_repo(config: DojoConfig, repos: TracedRepos | None = None) -> Callable[[DojoLocation], Path]:
    return (repos or TracedRepos(config)).path


_FULL_COMMIT = re.compile(r"[0-9a-f]{40}")
_TOOLCHAIN = re.compile(r"\s*leanprover/lean4:(\S+)\s*")


class TracedRepos:
    """LeanDojo `LeanGitRepo` objects, one per (url, commit), built from LeanDojo's cache when the trace is there.

    `repo(location)` never touches the network for a repository traced into the cache; it raises
    `MissingDependency` for one that is not traced (unless `config.allow_trace`), for a Lean version LeanDojo
    does not support, and for a trace too old for this LeanDojo. Thread-safe.
    """

    def __init__(self, config: DojoConfig) -> None:
        self.config = config
        self._repos: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def repo(self, location: DojoLocation) -> Any:
        """The `LeanGitRepo` of `location` (built once, then reused)."""
        key = (location.repo_url, location.commit)
        with self._lock:
            known = self._repos.get(key)
        if known is not None:
            return known
        repo = self._build(location)
        with self._lock:
            return self._repos.setdefault(key, repo)

    def path(self, location: DojoLocation) -> Path:
        """The traced copy of `location`'s repository in LeanDojo's cache."""
        lean_dojo = import_lean_dojo(self.config)
        repo = self.repo(location)
        with CWD_LOCK:  # only when tracing (allow_trace) does this change directory; then nothing may race it
            return Path(lean_dojo.get_traced_repo_path(repo))

    def cache_dir(self) -> Path:
        """LeanDojo's `CACHE_DIR` as it was read at import (the one its cache lookups use)."""
        import_lean_dojo(self.config)
        import lean_dojo.constants

        return Path(lean_dojo.constants.CACHE_DIR)

    def _build(self, location: DojoLocation) -> Any:
        lean_dojo = import_lean_dojo(self.config)
        traced = cached_trace(self.cache_dir(), location)
        if traced is not None:
            _check_trace(traced, location)
            if _is_github(location.repo_url):
                return _offline_repo(lean_dojo, location, traced)
        elif not self.config.allow_trace:
            raise MissingDependency(
                f"a LeanDojo trace of {location.repo_url}@{location.commit} in {self.cache_dir()}",
                "Tracing is off (it builds the whole repository, an hour or more for Mathlib-sized ones, and needs "
                "the network). Trace it once with\n  " + trace_command(location, self.cache_dir()) + "\n"
                "or allow the backend to do it: `[lean.dojo] allow_trace = true` (PROVER_LEAN__DOJO__ALLOW_TRACE=1).",
            )
        with CWD_LOCK:  # a non-GitHub repository is copied inside `working_directory`
            repo = lean_dojo.LeanGitRepo(location.repo_url, location.commit)
        _check_version(str(getattr(repo, "lean_version", "")), location)
        return repo


def trace_command(location: DojoLocation, cache_dir: Path) -> str:
    """The shell command that traces `location`'s repository into `cache_dir` with lean-dojo 4.20."""
    code = f"from lean_dojo import LeanGitRepo, trace; trace(LeanGitRepo({location.repo_url!r}, {location.commit!r}))"
    return f'CACHE_DIR={cache_dir} {sys.executable} -c "{code}"'


def _is_github(url: str) -> bool:
    return url.startswith("https://github.com/")


def cached_trace(cache_dir: Path, location: DojoLocation) -> Path | None:
    """The traced copy of `location`'s repository in LeanDojo's cache, or None.

    LeanDojo names it `<user>-<name>-<full commit>/<name>` for a GitHub URL and `gitpython-<name>-<commit>/<name>`
    otherwise (`data_extraction/lean.py`, `_format_cache_dirname`); a short commit matches one full one.
    """
    url = location.repo_url.rstrip("/").removesuffix(".git")
    name = _repo_name(url)
    prefix = f"{url.rsplit('/', 2)[-2]}-{name}-" if _is_github(url) else f"gitpython-{name}-"
    if not cache_dir.is_dir() or not location.commit:
        return None
    matches = [
        folder / name
        for folder in cache_dir.glob(f"{glob_escape(prefix)}{glob_escape(location.commit)}*")
        if (folder / name).is_dir()
        and folder.name[len(prefix) :].startswith(location.commit)
        and (_FULL_COMMIT.fullmatch(folder.name[len(prefix) :]) or folder.name[len(prefix) :] == location.commit)
    ]
    return matches[0] if len(matches) == 1 else None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _lean_version(traced: Path) -> str:
    try:
        text = (traced / "lean-toolchain").read_text(encoding="utf-8")
    except OSError:
        return ""
    match = _TOOLCHAIN.fullmatch(text)
    if match is None:
        return ""
    version = match.group(1)
    return "v" + version if version[:1].isdigit() else version


def _supported(version: str) -> bool:
    """LeanDojo's own `is_supported_version` (at least v4.3.0-rc2; `nightly-...` is not)."""
    from lean_dojo.data_extraction.lean import is_supported_version

    try:
        return bool(is_supported_version(version))
    except (ValueError, AssertionError, IndexError):
        return False


def _check_version(version: str, location: DojoLocation) -> None:
    if version in ("", "latest") or _supported(version):
        return
    raise MissingDependency(
        f"a LeanDojo-4.20-compatible trace of {location.repo_url}@{location.commit}",
        f"The repository pins Lean {version}, which lean-dojo 4.20.0 does not support "
        "(its is_supported_version wants v4.3.0-rc2 or newer; 2023 nightlies such as lean-dojo-mew's "
        "nightly-2023-08-19 are older, and its Lean4Repl.lean does not build there). Use the REPL backend "
        "(`--env repl`) with the packaged miniF2F project instead.",
    )


def _check_trace(traced: Path, location: DojoLocation) -> None:
    _check_version(_lean_version(traced), location)
    if not (traced / "Lean4Repl.lean").is_file():
        raise MissingDependency(
            f"a LeanDojo-4.20-compatible trace of {location.repo_url}@{location.commit}",
            f"{traced} has no Lean4Repl.lean: it was traced by a LeanDojo older than 2.0, whose traces lean-dojo "
            "4.20's Dojo refuses. Delete it and trace again with lean-dojo 4.20.",
        )


def _offline_repo(lean_dojo: ModuleType, location: DojoLocation, traced: Path) -> Any:
    """A `LeanGitRepo` for a GitHub repository traced in the cache, built without its network-bound `__post_init__`.

    `Dojo` and `get_traced_repo_path` read `url`, `commit` (a full hash), `name` and `get_cache_dirname()`
    (derived from the URL alone); `lean_version` is read from the traced copy. `repo` (the GitHub API object)
    is None: only tracing and `get_dependencies` use it.
    """
    lean_module = sys.modules[lean_dojo.LeanGitRepo.__module__]
    full_commit = traced.parent.name.rsplit("-", 1)[-1]
    repo = object.__new__(lean_dojo.LeanGitRepo)
    values = {
        "url": lean_module.normalize_url(location.repo_url),
        "commit": full_commit,
        "repo": None,
        "lean_version": _lean_version(traced) or "unknown",
        "repo_type": lean_module.RepoType.GITHUB,
    }
    for name, value in values.items():
        object.__setattr__(repo, name, value)
    return repo


@dataclass(frozen=True, slots=True)
class _DojoHandle:
    """Where a state lives: which session and `Dojo` generation, and the tactic path that led to it.

    `steps` holds (tactic, resulting pp) pairs from the initial state, so a fresh `Dojo` can replay them
    and check that it reaches the same states.
    """

    session: int
    generation: int
    steps: tuple[tuple[str, str], ...]
    tactic_state: Any = field(repr=False)


class _LeanDojoClasses:
    """LeanDojo's result and exception classes, looked up once (their names moved between versions)."""

    def __init__(self, module: ModuleType) -> None:
        self.tactic_state = module.TacticState
        self.proof_finished = module.ProofFinished
        self.lean_error = module.LeanError
        self.proof_given_up = module.ProofGivenUp
        self.timeout_result = getattr(module, "TimeoutError", None)  # LeanDojo < 1.0 returned a value
        self.timeout_errors: tuple[type[BaseException], ...] = tuple(
            getattr(module, name)
            for name in ("DojoTacticTimeoutError", "DojoHardTimeoutError")
            if hasattr(module, name)
        )
        self.crash_error: type[BaseException] = module.DojoCrashError
        self.init_error: type[BaseException] = module.DojoInitError


class _Abandoned:
    """Set from the event loop when it stopped waiting for a tactic (the thread must not retry it)."""

    def __init__(self) -> None:
        self.flag = threading.Event()


_SESSION_IDS = itertools.count(1)


class DojoSession:
    """Tactic-mode access to one theorem through LeanDojo (a `ProofSession`).

    Every `Dojo` call runs on this session's own thread, in order: a `Dojo` drives one pexpect-ed
    Lean process that must not be used from two threads at once, and a private thread keeps
    hundreds of sessions from queueing on (and starving) the event loop's shared default executor.
    """

    def __init__(
        self, env: DojoLeanEnv, theorem: Problem, location: DojoLocation, *, on_close: Callable[[], None] | None = None
    ) -> None:
        self._env = env
        self._on_close = on_close
        self._theorem = theorem
        self._location = location
        self._id = next(_SESSION_IDS)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dojo-{self._id}")
        self._dojo: Any = None
        self._dojo_context: Any = None
        self._generation = 0
        self._replayed: dict[tuple[tuple[str, str], ...], Any] = {}
        self._initial: ProofState | None = None
        self._closed = False

    @property
    def theorem(self) -> Problem:
        return self._theorem

    @property
    def initial_state(self) -> ProofState:
        if self._initial is None:
            raise RuntimeError("DojoSession.initial_state: the session has not started")
        return self._initial

    async def _call(self, function: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function)

    # Everything below named `_sync_*` runs on the session's thread only.

    def _sync_open(self) -> Any:
        classes = self._env._classes()
        started = time.monotonic()
        try:
            dojo = self._env._dojo_factory(self._location, self._env.config.timeout_s)
        except MissingDependency:
            raise
        except Exception as error:
            raise BackendStartError(f"LeanDojo could not prepare {self._location.full_name}: {error}") from error
        try:
            entered, state = dojo.__enter__()
        except BaseException as error:
            _kill_dojo_processes(dojo)
            kind = "could not start" if isinstance(error, classes.init_error) else "failed while starting"
            raise BackendStartError(f"LeanDojo {kind} on {self._location.full_name}: {error}") from error
        if not isinstance(state, classes.tactic_state):
            _kill_dojo_processes(dojo)
            raise BackendStartError(f"LeanDojo gave no tactic state for {self._location.full_name}: {state!r}")
        self._dojo = dojo if entered is None else entered
        self._dojo_context = dojo
        self._generation += 1
        self._replayed = {(): state}
        logger.debug(
            "opened Dojo %d for %s in %.1f s", self._generation, self._location.full_name, time.monotonic() - started
        )
        return state

    def _sync_discard(self) -> None:
        context = self._dojo_context
        self._dojo = None
        self._dojo_context = None
        self._replayed = {}
        if context is None:
            return
        try:
            context.__exit__(None, None, None)
        except Exception as error:  # a dead process may make LeanDojo's own cleanup fail
            logger.debug("Dojo cleanup failed: %s", error)
        _kill_dojo_processes(context)

    def _sync_resolve(self, handle: _DojoHandle) -> Any:
        """The live `TacticState` for `handle`, replaying its path in a fresh `Dojo` when needed."""
        if self._dojo is None:
            self._sync_open()
        if handle.generation == self._generation:
            return handle.tactic_state
        classes = self._env._classes()
        current = self._replayed[()]
        for depth in range(1, len(handle.steps) + 1):
            prefix = handle.steps[:depth]
            known = self._replayed.get(prefix)
            if known is not None:
                current = known
                continue
            tactic, expected = prefix[-1]
            result = self._dojo.run_tac(current, tactic)
            if not isinstance(result, classes.tactic_state) or ProofState.from_pp(result.pp).pp != expected:
                raise BackendCrashed(
                    f"replaying the proof path of {self._location.full_name} in a new Dojo diverged at `{tactic}`"
                )
            self._replayed[prefix] = result
            current = result
        return current

    def _sync_run(self, handle: _DojoHandle, tactic: str, timeout: float, abandoned: _Abandoned) -> TacticOutcome:
        classes = self._env._classes()
        failures = 0
        while True:
            if self._closed:
                raise BackendCrashed("the LeanDojo session was closed")
            try:
                current = self._sync_resolve(handle)
                proc = getattr(self._dojo, "proc", None)
                if proc is not None and hasattr(proc, "timeout"):
                    proc.timeout = timeout  # pexpect reads it on every expect()
                result = self._dojo.run_tac(current, tactic)
            except classes.timeout_errors:
                self._sync_discard()
                return TacticError(TacticErrorKind.TIMEOUT, f"the tactic ran past {timeout:g} s")
            except classes.crash_error as error:
                self._sync_discard()
                if abandoned.flag.is_set():
                    return TacticError(TacticErrorKind.TIMEOUT, f"the tactic ran past {timeout:g} s")
                failures += 1
                if failures > self._env.config.crash_restarts:
                    out_of_memory = getattr(error, "is_out_of_memory", False)
                    detail = "out of memory" if out_of_memory else str(error) or type(error).__name__
                    raise BackendCrashed(
                        f"LeanDojo crashed {failures} times running `{tactic}` on {self._location.full_name}: {detail}"
                    ) from error
                logger.info("Dojo crashed (%s); restarting and replaying the path", error)
                continue
            except BackendCrashed:
                self._sync_discard()
                raise
            return self._outcome(result, handle, tactic, classes)

    def _outcome(self, result: Any, handle: _DojoHandle, tactic: str, classes: _LeanDojoClasses) -> TacticOutcome:
        message = getattr(result, "message", None)
        messages = (message,) if message else ()
        if isinstance(result, classes.tactic_state):
            state = ProofState.from_pp(result.pp)
            steps = (*handle.steps, (tactic, state.pp))
            self._replayed.setdefault(steps, result)
            return Progress(
                ProofState.from_pp(result.pp, handle=_DojoHandle(self._id, self._generation, steps, result)), messages
            )
        if isinstance(result, classes.proof_finished):
            return ProofClosed(messages)
        if isinstance(result, classes.lean_error):
            return TacticError(TacticErrorKind.LEAN_ERROR, str(result.error))
        if isinstance(result, classes.proof_given_up):
            return TacticError(TacticErrorKind.USED_SORRY, "the tactic closed the goal with `sorry`")
        if classes.timeout_result is not None and isinstance(result, classes.timeout_result):
            self._sync_discard()
            return TacticError(TacticErrorKind.TIMEOUT, str(getattr(result, "error", "the tactic timed out")))
        raise BackendCrashed(f"LeanDojo returned {type(result).__name__}, which is not a tactic result")

    # The async surface.

    async def open(self) -> None:
        """Start the first `Dojo`; raises `BackendStartError` (after killing its processes) if it cannot."""
        state = await self._call(self._sync_open)
        self._initial = ProofState.from_pp(state.pp, handle=_DojoHandle(self._id, self._generation, (), state))

    async def run_tactic(self, state: ProofState, tactic: str, timeout: float) -> TacticOutcome:
        """Run `tactic` on `state` (from this session). Tactic failures, its timeout included, are values."""
        problem = check_tactic_text(tactic)
        if problem is not None:
            return TacticError(TacticErrorKind.UNSAFE, problem)
        handle = state.handle
        if not isinstance(handle, _DojoHandle) or handle.session != self._id:
            raise ValueError("DojoSession.run_tactic: the state does not come from this session")
        if self._closed:
            raise BackendCrashed("the LeanDojo session is closed")
        abandoned = _Abandoned()
        future = asyncio.ensure_future(self._call(lambda: self._sync_run(handle, tactic, timeout, abandoned)))
        # The pexpect timeout is the real deadline; this one only guards against a thread that hangs anyway
        # (it must also cover reopening a Dojo and replaying the path after an earlier timeout).
        watchdog = timeout + self._env.config.timeout_s + 30.0
        try:
            return await asyncio.wait_for(asyncio.shield(future), watchdog)
        except TimeoutError:
            abandoned.flag.set()
            dojo = self._dojo
            if dojo is not None:
                _kill_dojo_processes(dojo)
            return TacticError(TacticErrorKind.TIMEOUT, f"the tactic ran past {timeout:g} s (LeanDojo did not return)")

    async def close(self) -> None:
        """Exit the `Dojo` (killing its processes) and stop the session's thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._env._sessions.discard(self)
        try:
            await self._call(self._sync_discard)
        finally:
            self._executor.shutdown(wait=False)
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()  # the session's slot of `DojoConfig.max_dojos`


class DojoLeanEnv:
    """The LeanDojo backend (a `LeanEnv`) for problems that live in a LeanDojo-traced repository.

    `locate` says where each problem lives: a function of the problem, or a mapping from problem
    name to `DojoLocation` (e.g. built by the miniF2F loader for lean-dojo-mew). A problem it does
    not know cannot be opened or verified (`BackendStartError`). `check_in` is the repository
    `check` runs Lean in; when None, the first location of a `locate` mapping.

    What is a value and what raises: a statement the guard refuses is an `InvalidStatement`.
    LeanDojo's `DojoInitError` stays a `BackendStartError`: it does not say whether the statement
    or the installation is at fault (a theorem of a traced repository elaborated when it was
    traced, so a failure to open it usually means a broken trace, a missing build or a wrong
    toolchain). Sessions on holes are not available (`HoleUnavailable`): LeanDojo opens only the
    theorems of a traced file, not an arbitrary `sorry` of a checked text.

    `dojo_factory` and `traced_repo` replace how a `Dojo` is built and where a traced repository
    lies (tests use them to stand in for LeanDojo's `Dojo`; everything else is LeanDojo's own).
    """

    def __init__(
        self,
        config: DojoConfig,
        *,
        locate: DojoLocator | None = None,
        check_in: DojoLocation | None = None,
        dojo_factory: DojoFactory | None = None,
        traced_repo: Callable[[DojoLocation], Path] | None = None,
    ) -> None:
        self.config = config
        self._locate = locate
        self._check_in = check_in
        repos = TracedRepos(config)
        self._dojo_factory = dojo_factory or _real_dojo_factory(config, repos)
        self._traced_repo = traced_repo or _real_traced_repo(config, repos)
        self._sessions: set[DojoSession] = set()
        self._slots: asyncio.Semaphore | None = None
        self.slots = config.dojo_slots()
        """How many sessions may be open at once (`DojoConfig.dojo_slots`); `start` waits for a free one."""
        self._lean_dojo_classes: _LeanDojoClasses | None = None
        self._closed = False

    @property
    def syntax(self) -> LeanSyntax:
        """Lean 4's syntax rules (`lean_env.lean_syntax.LEAN`)."""
        return LEAN

    def _classes(self) -> _LeanDojoClasses:
        if self._lean_dojo_classes is None:
            self._lean_dojo_classes = _LeanDojoClasses(import_lean_dojo(self.config))
        return self._lean_dojo_classes

    def location(self, problem: Problem) -> DojoLocation | None:
        """Where `problem` lives according to `locate`, or None when it is unknown."""
        locate = self._locate
        if locate is None:
            return None
        if isinstance(locate, Mapping):
            return locate.get(problem.name)
        return locate(problem)

    def _location(self, problem: Problem) -> DojoLocation:
        location = self.location(problem)
        if location is None:
            raise BackendStartError(
                f"theorem {problem.name} has no LeanDojo location (repository, commit, file, full name); "
                "the dojo backend can only open theorems of a traced repository: build it with "
                "`DojoLeanEnv(config, locate={name: DojoLocation(...)})`"
            )
        return location

    async def start(self, problem: Problem, *, hole: Hole | None = None) -> DojoSession | InvalidStatement:
        """Open a `Dojo` on `problem`.

        Waits while `slots` sessions are open (`DojoConfig.max_dojos`); the slot is held until the session
        closes. Returns `InvalidStatement` when the guard refuses the statement. Raises `HoleUnavailable`
        for `hole` (LeanDojo cannot open a session on a `sorry` of a checked text) and
        `BackendStartError` when the problem has no location or LeanDojo cannot start.
        """
        if hole is not None:
            raise HoleUnavailable(
                f"the dojo backend cannot open a session on hole {hole.index} of {problem.name}: LeanDojo opens only "
                "theorems of a traced repository; use the REPL backend for holes"
            )
        refused = check_statement_text(problem.formal_statement)
        if refused is not None:
            return InvalidStatement(problem.name, f"the statement of {problem.name} was refused: {refused}")
        location = self._location(problem)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.slots)
        slots = self._slots
        await slots.acquire()
        session = DojoSession(self, problem, location, on_close=slots.release)
        self._sessions.add(session)
        try:
            await session.open()
        except BaseException:
            await session.close()
            raise
        return session

    async def check(self, text: str, timeout: float, *, header: str | None = None) -> CheckResult:
        """Run `lake env lean` on `text` in a temporary file inside the traced repository (`check_in`).

        Messages come from Lean's command line, positioned in `text`. Holes are the `sorry`s of
        `text` outside comments and strings, in order, with their spans; Lean's command line prints
        no goal for them, so `goal` is empty and `state` has no goals and no handle (sessions on holes
        are `HoleUnavailable` here). `header` is accepted for the protocol and unused: every check
        elaborates the whole text. A run past `timeout` is an error message in the result.
        """
        location = self._check_in
        if location is None and isinstance(self._locate, Mapping):
            location = next(iter(self._locate.values()), None)
        if location is None:
            raise BackendStartError(
                "the dojo backend checks texts inside a traced repository: pass "
                "`DojoLeanEnv(config, check_in=DojoLocation(...))` or a `locate` mapping"
            )
        started = time.monotonic()
        repo_dir = await self._repo_dir(location)
        output, returncode = await self._run_lean(repo_dir, repo_dir, text, timeout)
        seconds = time.monotonic() - started
        holes = tuple(_holes(text))
        if returncode is None:
            message = LeanMessage(Severity.ERROR, f"Lean did not finish checking the text within {timeout:g} s")
            return CheckResult(text, (message,), holes, seconds=seconds)
        messages = parse_lean_output(output)
        if returncode != 0 and not any(message.is_error for message in messages):
            tail = output.strip()[-1000:] or "no output"
            messages.append(LeanMessage(Severity.ERROR, f"lean exited with status {returncode}: {tail}"))
        return CheckResult(text, tuple(messages), holes, seconds=seconds)

    async def _repo_dir(self, location: DojoLocation) -> Path:
        try:
            return await asyncio.to_thread(self._traced_repo, location)
        except MissingDependency:
            raise
        except Exception as error:
            raise BackendStartError(f"LeanDojo has no traced copy of {location.repo_url}: {error}") from error

    async def verify(self, theorem: Problem, proof: str, timeout: float) -> VerifyResult:
        """Check header + statement + `proof` + `#print axioms` with `lake env lean` in the traced repository.

        The header is the traced file's text before the theorem, and the statement must be the file's
        (up to whitespace). Judged by `lean_env.verification.judge`; raises `LeanEnvError` only when
        the backend itself fails (no location, no traced repository, no `lake`).
        """
        rejected = precheck(theorem, proof)
        if rejected is not None:
            return rejected
        location = self._location(theorem)
        started = time.monotonic()
        repo_dir = await self._repo_dir(location)
        source = repo_dir / location.file_path
        try:
            header, file_statement = locate_theorem(source.read_text(encoding="utf-8"), location.full_name)
        except (OSError, DojoLocationError) as error:
            raise BackendStartError(f"cannot read {location.full_name} from {source}: {error}") from error
        checked = Problem(name=theorem.name, header=header, formal_statement=theorem.formal_statement)
        text = build_check_file(checked, proof)
        if normalize_statement(file_statement) != normalize_statement(theorem.formal_statement):
            return VerifyResult(
                VerifyStatus.STATEMENT_CHANGED,
                reason=f"the statement differs from the one in {location.file_path}",
                checked_text=text,
            )
        output, returncode = await self._run_lean(repo_dir, source.parent, text, timeout)
        seconds = time.monotonic() - started
        if returncode is None:
            return VerifyResult(
                VerifyStatus.TIMEOUT, reason=f"Lean ran past {timeout:g} s", checked_text=text, seconds=seconds
            )
        messages = parse_lean_output(output)
        if returncode != 0 and not any(message.is_error for message in messages):
            tail = output.strip()[-1000:] or "no output"
            messages.append(LeanMessage(Severity.ERROR, f"lean exited with status {returncode}: {tail}"))
        return judge(checked, text, messages, seconds, header_lines=header.count("\n"))

    async def _run_lean(self, repo_dir: Path, folder: Path, text: str, timeout: float) -> tuple[str, int | None]:
        """Run Lean on `text` written next to the theorem's file; (output, exit status or None on timeout)."""
        memory_mb = 1024 * int(self.config.memory_limit[:-1])
        handle, name = tempfile.mkstemp(prefix="prover_check_", suffix=".lean", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
            relative = os.path.relpath(name, repo_dir)
            command = [
                _find_program(self.config.lean_command[0]),
                *self.config.lean_command[1:],
                f"--threads={self.config.cpu_limit}",
                f"--memory={memory_mb}",
                relative,
            ]
            try:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    cwd=repo_dir,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError as error:
                raise MissingDependency(
                    f"`{self.config.lean_command[0]}` (Lean's build tool)",
                    "Run `prover setup` to install elan and Lean.",
                ) from error
            try:
                stdout, _ = await asyncio.wait_for(process.communicate(), timeout)
            except TimeoutError:
                _kill_process_tree(process.pid)
                await process.wait()
                return "", None
            except asyncio.CancelledError:
                _kill_process_tree(process.pid)
                raise
            return stdout.decode("utf-8", errors="replace"), process.returncode
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    async def close(self) -> None:
        """Close every open session (and its Lean processes). Safe to call twice."""
        self._closed = True
        for session in list(self._sessions):
            await session.close()

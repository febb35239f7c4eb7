"""The results file of an evaluation: append-only JSONL, one record per theorem, safe against SIGKILL.

Each record is written with a single `write` on an append-mode descriptor, then flushed and fsynced,
before the next theorem's result is written. A process killed at any moment leaves at most one torn
last line; readers ignore it and `ResultsWriter` cuts it off before appending, so a resumed run starts
on a clean line boundary and re-runs that theorem. Resume matches theorem names, never counts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
"""The results file's name inside a run directory."""


class ResultsError(ValueError):
    """The results file is damaged somewhere other than its last line; the message names the line."""


class EvalRecord(BaseModel):
    """One line of `results.jsonl`: the outcome of one problem.

    The search's own fields are those of `SearchResult.to_dict()`; the evaluation adds the split,
    category and language, `statement_hash` (`Problem.statement_hash`, so a resume can tell a
    changed statement), `lean_file` (the whole checked file of a proof, in the problem's language),
    `judge` (which judge accepted the proof), `header` and `formal_statement` (what was attempted),
    timing, the worker that ran it and its attempt number (more than one only when the problem
    itself killed a distributed worker). `status` is a `SearchStatus` value; `invalid_statement`
    is an outcome like `failed`, while `env_error` is the only infrastructure failure. Records
    written before `language` and `statement_hash` existed load with `lean4` and an empty hash.
    Unknown fields are kept, so files written by newer versions still load.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    split: str = ""
    category: str = "other"
    language: str = "lean4"
    statement_hash: str = ""
    status: str
    proved: bool
    verified: bool = False
    proof: str | None = None
    tactics: list[str] = Field(default_factory=list)
    failure_reason: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    rejected_proofs: list[dict[str, Any]] = Field(default_factory=list)
    lean_file: str | None = None
    judge: str | None = None
    """Which judge accepted the proof (`comparator` or `repl`, `lean_env.types.Judge`); None if not proved."""
    header: str | None = None
    formal_statement: str | None = None
    """The problem's header and statement as attempted, so `prover verify` can re-check a proof from the
    record alone. Records written before these existed carry None (and no `judge`)."""
    started_at: float | None = None
    """Unix time the search started."""
    finished_at: float | None = None
    worker: str = ""
    attempts: int = 1

    @property
    def wall_seconds(self) -> float:
        return float(self.stats.get("wall_seconds", 0.0))

    @property
    def expansions(self) -> int:
        return int(self.stats.get("expansions", 0))


def _encode(record: EvalRecord | Mapping[str, Any]) -> bytes:
    data = record.model_dump(mode="json") if isinstance(record, EvalRecord) else dict(record)
    return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def repair_torn_tail(path: Path) -> int:
    """Cut an incomplete last line (a write interrupted by a kill) off `path`; returns the bytes removed."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "r+b") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Scan back in blocks for the last newline; records are a few kB at most.
        position = size
        keep = 0
        while position > 0:
            start = max(0, position - 65536)
            handle.seek(start)
            block = handle.read(position - start)
            index = block.rfind(b"\n")
            if index >= 0:
                keep = start + index + 1
                break
            position = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    logger.warning("%s: removed an incomplete last record (%d bytes) left by an interrupted run", path, size - keep)
    return size - keep


class ResultsWriter:
    """Appends records to a results file, durably, one at a time. Thread-safe; use as a context manager.

    Opening repairs a torn last line. `write` returns only once the record is on disk (fsync).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        repair_torn_tail(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        if created:
            _fsync_directory(self.path.parent)

    def write(self, record: EvalRecord | Mapping[str, Any]) -> None:
        data = _encode(record)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path}: write after close")
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_records(path: Path) -> list[EvalRecord]:
    """Every complete record of a results file, in file order; [] if the file does not exist.

    An incomplete or unreadable last line (a run killed mid-write) is ignored with a warning. A damaged
    line elsewhere raises `ResultsError` naming it. When a name appears twice the first record wins.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")
    torn_tail = lines.pop()  # b"" when the file ends with a newline
    if torn_tail.strip():
        logger.warning("%s: ignoring an incomplete last line (%d bytes)", path, len(torn_tail))
    records: list[EvalRecord] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = EvalRecord.model_validate(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, ValidationError) as error:
            if number == len(lines) and not torn_tail.strip():
                logger.warning("%s:%d: ignoring an unreadable last line (%s)", path, number, error)
                break
            raise ResultsError(f"{path}:{number}: not a valid result record ({error})") from error
        if record.name in seen:
            logger.warning("%s:%d: %s is recorded twice; keeping the first record", path, number, record.name)
            continue
        seen.add(record.name)
        records.append(record)
    return records


def completed_names(path: Path) -> set[str]:
    """Names of the problems already recorded in `path` (what `--resume` skips)."""
    return {record.name for record in read_records(path)}


def remove_records(path: Path, drop: Callable[[EvalRecord], bool]) -> list[str]:
    """Rewrite `path` without the records for which `drop` is true (atomically); returns their names.

    Used to retry problems that ended in an infrastructure error, or whose statement changed. The file
    is replaced by rename, so a kill during the rewrite leaves either the old or the new file, never a mix.
    """
    path = Path(path)
    records = read_records(path)
    dropped = [record.name for record in records if drop(record)]
    if not dropped:
        return []
    kept: Iterable[EvalRecord] = (record for record in records if not drop(record))
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        for record in kept:
            handle.write(_encode(record))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)
    return dropped

"""Opening a run directory: a fresh run, or a resume checked against the recorded manifest.

`prepare_run` is what `prover eval` does before any search starts, kept out of the CLI so every
executor (local, Ray) and every driver resumes the same way: problems already in `results.jsonl`
are skipped (matched by name and statement hash: a record of a statement that has since changed is
dropped and the problem run again), a torn last line is cut off, and settings that would mix two
experiments are refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prover.config import ProverSettings
from prover.evaluation.manifest import (
    build_manifest,
    check_resume,
    read_manifest,
    resumed_manifest,
    write_manifest,
)
from prover.evaluation.results import RESULTS_FILE, EvalRecord, completed_names, remove_records, repair_torn_tail
from prover.minif2f.dataset import Dataset
from search.types import SearchStatus

logger = logging.getLogger(__name__)


class RunDirectoryError(ValueError):
    """The output directory cannot be used as asked (results exist without `--resume`, or a mismatch)."""


@dataclass(frozen=True, slots=True)
class PreparedRun:
    """A run directory ready to receive records: where results go and which names to skip."""

    out_dir: Path
    results_path: Path
    manifest: dict[str, Any]
    skip: frozenset[str]
    warnings: tuple[str, ...]
    retried: tuple[str, ...] = ()
    """Names whose `env_error` records were removed to be attempted again (`retry_errors`)."""
    changed: tuple[str, ...] = ()
    """Names whose records were of another statement (hash) and were removed to be attempted again."""


LOCK_FILE = ".lock"


class RunLock:
    """An exclusive lock on a run directory, held while one `prover eval` writes into it.

    `flock` on `<out>/.lock`, which holds the owner's pid: the operating system releases it when the
    process ends however it ends (SIGKILL included), so a stale lock never blocks a resume. A second
    run on the same directory is refused with `RunDirectoryError` naming the first one's pid.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOCK_FILE
        self._handle: Any = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # held open while the lock is
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirectoryError(
                f"{self.path.parent} is in use by another run (pid {owner}); "
                "wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock
            self._handle = None


def prepare_run(
    out_dir: Path,
    settings: ProverSettings,
    dataset: Dataset,
    *,
    resume: bool = False,
    force: bool = False,
    retry_errors: bool = False,
    selection: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
) -> PreparedRun:
    """Create or reopen `out_dir` and write its manifest.

    Without `resume`, a directory that already holds results is refused (nothing is overwritten).
    With `resume`, the recorded manifest must agree on the search budget and model unless `force`
    (raises `ResumeMismatch`); `retry_errors` first removes `env_error` records so those problems run
    again. Only `env_error` is retried: an `invalid_statement` record is an outcome and stays.
    """
    out_dir = Path(out_dir)
    results_path = out_dir / RESULTS_FILE
    current = build_manifest(settings, dataset, selection=selection, command=command)
    has_results = results_path.exists() and results_path.stat().st_size > 0
    if not resume:
        if has_results:
            raise RunDirectoryError(
                f"{out_dir} already holds results; pass --resume to continue that run or choose another --out"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        write_manifest(out_dir, current)
        return PreparedRun(out_dir, results_path, current, frozenset(), ())
    previous = read_manifest(out_dir)
    warnings: list[str] = []
    if previous is None:
        if has_results:
            warnings.append(f"{out_dir} has results but no manifest; writing a new manifest")
        manifest = current
    else:
        warnings.extend(check_resume(previous, current, force=force))
        manifest = resumed_manifest(previous, current)
    repair_torn_tail(results_path)
    retried: list[str] = []
    changed: list[str] = []
    if results_path.exists():
        hashes = {problem.name: problem.statement_hash for problem in dataset.problems}
        changed = remove_records(results_path, lambda record: _statement_changed(record, hashes))
        if changed:
            warnings.append(
                f"{len(changed)} recorded problem(s) have a different statement now and will run again: "
                + ", ".join(changed[:5])
                + (" ..." if len(changed) > 5 else "")
            )
        if retry_errors:
            retried = remove_records(results_path, is_retryable)
    skip = frozenset(completed_names(results_path))
    write_manifest(out_dir, manifest)
    for warning in warnings:
        logger.warning("%s", warning)
    return PreparedRun(out_dir, results_path, manifest, skip, tuple(warnings), tuple(retried), tuple(changed))


def is_retryable(record: EvalRecord) -> bool:
    """What `retry_errors` re-runs: infrastructure errors (`env_error`) only, never `invalid_statement`."""
    return record.status == SearchStatus.ENV_ERROR.value


def _statement_changed(record: EvalRecord, hashes: Mapping[str, str]) -> bool:
    # A record without a hash predates hashes; a name outside the selection is not ours to judge.
    current = hashes.get(record.name)
    return bool(record.statement_hash) and current is not None and record.statement_hash != current

"""`prover verify`: re-check recorded proofs from scratch with the strongest judge available.

`prover verify RUN_DIR` re-checks every proved record of `RUN_DIR/results.jsonl`; `prover verify --pairs
FILE.jsonl` checks a user's own JSONL of `{name, header?, formal_statement, proof}` lines (Kimina-style
batch checking: `proof` is the text after the statement's `:=`, e.g. a `by` block; `header` defaults
to the miniF2F header). Each proof is checked by `LeanEnv.verify` on the settings' backend: with
comparator installed (or `--judge comparator`) that is the REPL re-check followed by comparator
(`JudgedEnv`), else the REPL re-check alone.

The problem is rebuilt from the record itself: results records carry `header` and `formal_statement`
(since the judge fields were added), and a record whose statement hash does not match them is not
trusted. Records written before then cannot be re-checked and are reported as `missing_statement`.

It writes `verification.jsonl` (one line per checked proof) and `verification.md` beside the
results (for `--pairs`, `<FILE stem>.verification.{jsonl,md}` beside the file, or in `--out`) and
rewrites nothing else. Exit status: 0 when every proof passes, 1 when any does not, 2 for bad input.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError, current_backends
from prover.cli.options import lean_options, settings_options, settings_overrides

VERIFICATION_FILE = "verification.jsonl"
VERIFICATION_REPORT = "verification.md"
MISSING_STATEMENT = "missing_statement"
STATEMENT_MISMATCH = "statement_hash_mismatch"
BACKEND_FAILURE = "backend_failure"


@dataclass(frozen=True, slots=True)
class Item:
    """One proof to re-check: the problem's fields as recorded, and the proof text."""

    name: str
    header: str | None
    formal_statement: str | None
    proof: str
    language: str = "lean4"
    statement_hash: str = ""
    recorded_judge: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One line of `verification.jsonl`."""

    name: str
    passed: bool
    status: str
    judge: str | None
    reason: str
    seconds: float
    recorded_judge: str | None
    statement_hash: str


def _items_from_run(run_dir: Path) -> list[Item]:
    from prover.evaluation.results import RESULTS_FILE, ResultsError, read_records

    results = run_dir / RESULTS_FILE
    if not results.is_file():
        raise UserFacingError(f"{run_dir}: no {RESULTS_FILE}; give a directory written by `prover eval --out`")
    try:
        records = read_records(results)
    except ResultsError as error:
        raise UserFacingError(str(error)) from error
    return [
        Item(
            name=record.name,
            header=record.header,
            formal_statement=record.formal_statement,
            proof=record.proof,
            language=record.language,
            statement_hash=record.statement_hash,
            recorded_judge=record.judge,
        )
        for record in records
        if record.proved and record.proof
    ]


def _items_from_pairs(path: Path) -> list[Item]:
    from prover.statements import MINIF2F_HEADER

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserFacingError(f"--pairs {path}: cannot read it ({error})") from error
    items: list[Item] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserFacingError(f"{path}:{number}: not JSON ({error})") from error
        if not isinstance(data, dict):
            raise UserFacingError(f"{path}:{number}: expected an object with formal_statement and proof")
        statement, proof = data.get("formal_statement"), data.get("proof")
        if not isinstance(statement, str) or not statement.strip():
            raise UserFacingError(f"{path}:{number}: `formal_statement` must be a non-empty string")
        if not isinstance(proof, str) or not proof.strip():
            raise UserFacingError(f"{path}:{number}: `proof` must be a non-empty string")
        name = str(data.get("name") or f"pair_{number}")
        if name in seen:
            raise UserFacingError(f"{path}:{number}: the name {name!r} is used twice")
        seen.add(name)
        header = data.get("header")
        items.append(
            Item(
                name=name,
                header=header if isinstance(header, str) else MINIF2F_HEADER,
                formal_statement=statement,
                proof=proof,
                language=str(data.get("language") or "lean4"),
            )
        )
    return items


async def _check_all(items: Sequence[Item], env: Any, timeout: float, concurrency: int) -> list[Verdict]:
    from lean_env.errors import LeanEnvError
    from lean_env.types import Language, Problem

    slots = asyncio.Semaphore(concurrency)

    async def check(item: Item) -> Verdict:
        def verdict(passed: bool, status: str, reason: str, judge: str | None = None, seconds: float = 0.0) -> Verdict:
            return Verdict(item.name, passed, status, judge, reason, seconds, item.recorded_judge, item.statement_hash)

        if item.header is None or not item.formal_statement:
            return verdict(False, MISSING_STATEMENT, "the record carries no statement; re-run the evaluation")
        try:
            problem = Problem(item.name, item.header, item.formal_statement, language=Language(item.language))
        except ValueError as error:
            return verdict(False, MISSING_STATEMENT, str(error))
        if item.statement_hash and item.statement_hash != problem.statement_hash:
            return verdict(False, STATEMENT_MISMATCH, "the recorded statement does not match its recorded hash")
        async with slots:
            started = time.monotonic()
            try:
                result = await env.verify(problem, item.proof, timeout)
            except LeanEnvError as error:
                return verdict(False, BACKEND_FAILURE, str(error), seconds=time.monotonic() - started)
        return verdict(result.ok, result.status.value, result.reason, result.judge, result.seconds)

    return list(await asyncio.gather(*(check(item) for item in items)))


async def _run(items: Sequence[Item], settings: Any, timeout: float, concurrency: int) -> tuple[list[Verdict], str]:
    from lean_env.judged import JudgedEnv

    env = current_backends().build_env(settings.lean)
    try:
        strongest = "comparator" if isinstance(env, JudgedEnv) else "repl"
        return await _check_all(items, env, timeout, concurrency), strongest
    finally:
        await env.close()


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _markdown(source: str, verdicts: Sequence[Verdict], strongest: str, wall: float) -> str:
    passed = sum(v.passed for v in verdicts)
    judges = Counter(v.judge or "-" for v in verdicts if v.passed)
    lines = [
        f"# Verification of {source}",
        "",
        f"**{passed}/{len(verdicts)} proofs pass** the re-check from scratch "
        f"(strongest judge available: {strongest}; {wall:.1f} s).",
        "",
        "Accepted by: " + (", ".join(f"{judge}: {count}" for judge, count in sorted(judges.items())) or "none"),
        "",
    ]
    failed = [v for v in verdicts if not v.passed]
    if failed:
        lines += ["| failed proof | status | judge | reason |", "|---|---|---|---|"]
        for v in sorted(failed, key=lambda v: v.name):
            reason = (v.reason.strip().splitlines() or ["-"])[0][:160].replace("|", "\\|")
            lines.append(f"| {v.name} | {v.status} | {v.judge or '-'} | {reason} |")
        lines.append("")
    return "\n".join(lines)


@click.command(name="verify")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--pairs",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check a JSONL of {name, header?, formal_statement, proof} instead of a run directory.",
)
@click.option(
    "--judge",
    type=click.Choice(["auto", "comparator", "repl"]),
    default="auto",
    show_default=True,
    help="auto: comparator when installed, else the REPL re-check; comparator: require it; repl: REPL only.",
)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="--pairs: where to write the report.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Proofs checked at once.")
@click.option("--timeout", type=float, help="Seconds per REPL re-check (default: search.verify_timeout_s).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@lean_options
@settings_options
def verify(**options: Any) -> None:
    """Re-check every recorded proof from scratch; write verification.jsonl and verification.md.

    Exits 0 when every proof passes, 1 when any does not, 2 for bad input (no results, malformed JSONL).
    """
    from prover.config import load_settings

    run_dir: Path | None = options["run_dir"]
    pairs: Path | None = options["pairs"]
    if (run_dir is None) == (pairs is None):
        raise UserFacingError("give a run directory or --pairs FILE.jsonl (one of them)")
    enabled = {"auto": None, "comparator": "on", "repl": "off"}[options["judge"]]
    # verify's own --timeout is the re-check's deadline, not the search budget the shared flag would set.
    overrides = settings_overrides({**options, "timeout": None}, lean={"comparator": {"enabled": enabled}})
    settings = load_settings(options["config_file"], os.environ, overrides)
    if run_dir is not None:
        items = _items_from_run(run_dir)
        out_dir, stem, source = run_dir, "verification", str(run_dir)
    else:
        assert pairs is not None
        items = _items_from_pairs(pairs)
        out_dir, stem, source = options["out"] or pairs.parent, f"{pairs.stem}.verification", str(pairs)
    timeout = options["timeout"] or settings.search.verify_timeout_s
    started = time.monotonic()
    verdicts, strongest = asyncio.run(_run(items, settings, timeout, options["concurrency"])) if items else ([], "-")
    wall = time.monotonic() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / (VERIFICATION_FILE if stem == "verification" else f"{stem}.jsonl")
    report = out_dir / (VERIFICATION_REPORT if stem == "verification" else f"{stem}.md")
    _write_atomically(jsonl, "".join(json.dumps(asdict(v), ensure_ascii=False) + "\n" for v in verdicts))
    _write_atomically(report, _markdown(source, verdicts, strongest, wall))
    passed = sum(v.passed for v in verdicts)
    summary = {
        "checked": len(verdicts),
        "passed": passed,
        "failed": len(verdicts) - passed,
        "judge": strongest,
        "verification": str(jsonl),
        "report": str(report),
    }
    if options["as_json"]:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"verified {passed}/{len(verdicts)} proofs (judge: {strongest}); report: {report}")
        for v in verdicts:
            if not v.passed:
                click.echo(f"  FAIL {v.name}: {v.status}: {(v.reason.strip().splitlines() or [''])[0][:160]}")
    raise SystemExit(0 if passed == len(verdicts) else 1)

"""Reading theorem statements given by users: a statement string or a named theorem in a Lean file.

Malformed input raises `StatementError` with a message that says what is wrong and where. The
source policy (`lean_env.source_policy`, `lean.policy` in the settings) applies to both: sizes
first, then the header (`--header`, or the text of a `--file` before its theorem), which may only
import allowed modules, open namespaces and set allowed options.
"""

from __future__ import annotations

from pathlib import Path

from lean_env import lean_syntax
from lean_env.guard import check_statement_text
from lean_env.source_policy import DEFAULT_POLICY, SourcePolicy, check_header, check_sizes, enforce_policy
from lean_env.types import Problem

MINIF2F_HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"
"""The header every miniF2F-lean4 file starts with; the default for `prover prove --statement`."""


class StatementError(ValueError):
    """A statement or file the user gave cannot be used; the message says why."""


def theorem_from_statement(
    statement: str,
    header: str = MINIF2F_HEADER,
    name: str | None = None,
    policy: SourcePolicy = DEFAULT_POLICY,
) -> Problem:
    """A `Theorem` from `theorem name <binders> : <type> := by` (the trailing `by` may be omitted).

    Nothing after `:=` is allowed: the search writes the proof. The statement and `header` must
    pass `policy` (sizes, then the header's commands). Raises `StatementError`.
    """
    too_large = check_sizes(policy, statement=statement, header=header)
    if too_large is not None:
        raise StatementError(f"--statement: {too_large}")
    header_problem = check_header(header, policy)
    if header_problem is not None:
        raise StatementError(f"--header: {header_problem}")
    text = statement.strip()
    if not text:
        raise StatementError("--statement: the statement is empty")
    found = lean_syntax.declarations(text)
    if not found or found[0].start != 0:
        raise StatementError(
            f"--statement: it must start with `theorem <name>` (or `lemma <name>`), but starts with {text[:40]!r}"
        )
    declaration = found[0]
    end = declaration.signature_end
    if end < 0:
        raise StatementError("--statement: the statement has no `:=`; end it with `:= by`")
    after = text[end:].strip()
    if after not in ("", "by"):
        raise StatementError(
            f"--statement: nothing may follow `:= by` (the prover writes the proof); found {after[:40]!r}"
        )
    if ":" not in lean_syntax.mask(text)[declaration.name_end : end - 2]:
        raise StatementError(
            "--statement: the statement has no type (expected `theorem name ... : <proposition> := by`)"
        )
    formal = text[:end] + " by"
    problem = check_statement_text(formal, max_bytes=policy.max_statement_bytes)
    if problem is not None:
        raise StatementError(f"--statement: {problem}")
    return Problem(
        name=name or declaration.name,
        header=header if header.endswith("\n") or not header else header + "\n",
        formal_statement=formal,
    )


def theorem_from_file(path: Path, name: str, policy: SourcePolicy = DEFAULT_POLICY) -> Problem:
    """The theorem called `name` in the Lean file `path`; the text before it becomes the header.

    That text must pass `policy` like any header: only `import`, `open` and `set_option` (so a file
    whose theorem follows other declarations is refused, naming the first one's line). Raises
    `StatementError`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise StatementError(f"--file: {path} does not exist") from error
    except IsADirectoryError as error:
        raise StatementError(f"--file: {path} is a directory; give the Lean file that holds the theorem") from error
    except PermissionError as error:
        raise StatementError(f"--file: {path} cannot be read (permission denied)") from error
    except UnicodeDecodeError as error:
        raise StatementError(f"--file: {path} is not UTF-8 text") from error
    declared = [declaration.name for declaration in lean_syntax.declarations(text)]
    if name in declared:
        parts = lean_syntax.split_declaration(text, name)
        if parts is None:
            raise StatementError(
                f"{path}, theorem {name}: the statement has no `:=`; write it as `theorem name ... := by`"
            )
        header, _, statement, _ = parts
        found = Problem(name=name, header=header, formal_statement=statement.strip())
        problem = enforce_policy(found, policy)
        if problem is not None:
            raise StatementError(f"{path}, theorem {name}: {problem}")
        return found
    hint = f" (it declares: {', '.join(declared[:10])})" if declared else " (it declares no theorem)"
    raise StatementError(f"--name: no theorem named {name!r} in {path}{hint}")

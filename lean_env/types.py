"""The vocabulary every layer shares: theorems, proof states, tactic outcomes, verification results.

Core values are frozen, slotted dataclasses. Equality of a `ProofState` is its canonical
pretty-printed text only, so states can key dictionaries and two tactic paths that reach the
same Lean state (a transposition) meet in one search node. Backend handles never take part in
equality or hashing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_GOAL_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class DojoLocation:
    """Where a theorem lives in a LeanDojo-traced repository (used only by the `dojo` backend)."""

    repo_url: str
    commit: str
    file_path: str
    full_name: str


@dataclass(frozen=True, slots=True)
class Theorem:
    """A theorem to prove.

    `header` is the file text before the statement (imports, `set_option`, `open` lines);
    `formal_statement` runs from `theorem <name>` up to and including the final `:= by`.
    `header + formal_statement + " sorry"` is a complete Lean file.
    """

    name: str
    header: str
    formal_statement: str
    location: DojoLocation | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("Theorem.name: must be a non-empty string")
        if not self.formal_statement.strip():
            raise ValueError(f"Theorem.formal_statement of {self.name!r}: must not be empty")

    @property
    def statement_without_by(self) -> str:
        """The statement with its trailing `:= by` (or `:=`) removed, e.g. for `theorem ... := <term>`."""
        return re.sub(r":=\s*(by)?\s*$", "", self.formal_statement.rstrip()).rstrip()

    def file_text(self, proof: str) -> str:
        """The whole Lean file for `proof`, a tactic block as rendered by the search (starts with `by`).

        `proof` is placed after `:=`, so the statement text stays byte-identical to the one asked for.
        """
        return f"{self.header}{self.statement_without_by} := {proof}\n"


@dataclass(frozen=True, slots=True)
class ProofState:
    """One Lean tactic state: the goals still open.

    `pp` is the canonical pretty-printed text (goals joined by a blank line) and is the only
    thing equality and hashing look at. `goals` is the same text split per goal. `handle` is the
    backend's reference to the live state (a REPL proof-state id, a LeanDojo `TacticState`) and is
    excluded from equality: two states with the same text are the same state.
    """

    pp: str
    goals: tuple[str, ...] = field(default=(), compare=False, hash=False)
    handle: Any = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def from_goals(cls, goals: list[str] | tuple[str, ...], handle: Any = None) -> ProofState:
        """Build a state from a backend's goal list (the REPL's `goals`)."""
        cleaned = tuple(goal.strip() for goal in goals)
        return cls(pp=_GOAL_SEPARATOR.join(cleaned), goals=cleaned, handle=handle)

    @classmethod
    def from_pp(cls, pp: str, handle: Any = None) -> ProofState:
        """Build a state from pretty-printed text with goals separated by blank lines (LeanDojo's `pp`)."""
        text = pp.strip()
        goals = tuple(part.strip() for part in text.split(_GOAL_SEPARATOR) if part.strip())
        return cls(pp=_GOAL_SEPARATOR.join(goals), goals=goals, handle=handle)

    @property
    def num_goals(self) -> int:
        return len(self.goals)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    TRACE = "trace"


@dataclass(frozen=True, slots=True)
class LeanMessage:
    """One message Lean printed about a command or tactic (the REPL's `messages` entries)."""

    severity: Severity
    text: str
    line: int = 0
    column: int = 0

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class TacticErrorKind(StrEnum):
    """Why a tactic did not make progress. These are values the search reasons about, not crashes."""

    LEAN_ERROR = "lean_error"
    """Lean rejected the tactic (elaboration error, failed tactic)."""
    TIMEOUT = "timeout"
    """The tactic ran past its own timeout; the backend has already discarded the process."""
    USED_SORRY = "used_sorry"
    """The tactic closed or changed goals only by using `sorry`/`admit`."""
    UNSAFE = "unsafe"
    """The tactic text was refused before reaching Lean (e.g. `native_decide`, `#eval`, a new declaration)."""
    UNVERIFIED = "unverified"
    """The tactic closed the proof step by step, but the whole-file re-check rejected the proof."""


@dataclass(frozen=True, slots=True)
class Progress:
    """The tactic succeeded and goals remain: the new state."""

    state: ProofState
    messages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProofClosed:
    """The tactic closed every remaining goal (REPL `Completed` with no error message)."""

    messages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TacticError:
    """The tactic failed; `kind` says how and `message` carries Lean's text."""

    kind: TacticErrorKind
    message: str = ""


TacticOutcome = Progress | ProofClosed | TacticError
"""The outcome of one tactic on one state."""


class VerifyStatus(StrEnum):
    """Why a whole-proof check accepted or rejected a proof (Kimina-style outcome names)."""

    VALID = "valid"
    GUARD_REJECTED = "guard_rejected"
    LEAN_ERROR = "lean_error"
    SORRY = "sorry"
    STATEMENT_CHANGED = "statement_changed"
    NONSTANDARD_AXIOMS = "nonstandard_axioms"
    TIMEOUT = "timeout_error"
    BACKEND_ERROR = "repl_error"


STANDARD_AXIOMS: frozenset[str] = frozenset({"propext", "Classical.choice", "Quot.sound"})
"""The only axioms a reported proof may depend on."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The verdict of checking a whole file (header + statement + proof) in a fresh environment.

    `ok` is true only for `VerifyStatus.VALID`; every other status carries a `reason` a person can read.
    """

    status: VerifyStatus
    reason: str = ""
    messages: tuple[str, ...] = ()
    axioms: tuple[str, ...] = ()
    checked_text: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.VALID

    def __post_init__(self) -> None:
        if self.status is not VerifyStatus.VALID and not self.reason:
            raise ValueError("VerifyResult.reason: a rejection must say why")

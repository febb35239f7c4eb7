"""The vocabulary every layer shares: theorems, proof states, tactic outcomes, verification results.

Core values are frozen, slotted dataclasses. Equality of a `ProofState` is its canonical
pretty-printed text only, so states can key dictionaries and two tactic paths that reach the
same Lean state (a transposition) meet in one search node. Backend handles never take part in
equality or hashing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_GOAL_SEPARATOR = "\n\n"


class Language(StrEnum):
    """The proof assistant a problem is stated in; each has its own backend and syntax module."""

    LEAN4 = "lean4"
    ISABELLE = "isabelle"


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem to prove: a formal statement in a named language, with where it comes from.

    `header` is the text a file needs before the statement (Lean: imports, `set_option`, `open`
    lines; Isabelle: the `theory ... imports ... begin` lines). `formal_statement` is the statement
    without its proof as the dataset writes it (Lean: `theorem name ... := by`; Isabelle:
    `theorem name: "..."`). How a proof is put after it is the language backend's business
    (`lean_env.lean_syntax`), never this type's. `informal_statement` (LaTeX) and
    `informal_proof` are optional and only read by the informal-to-formal pipeline.
    `split` / `category` / `source` / `upstream` say where the problem comes from: the split
    (`valid`, `test`, or empty), a family name (`mathd_algebra`, ...), where it was read
    (`<file>:<line>`) and where it comes from originally (`owner/repo@commit:path`).
    """

    name: str
    header: str
    formal_statement: str
    language: Language = Language.LEAN4
    informal_statement: str | None = None
    informal_proof: str | None = None
    split: str = ""
    category: str = ""
    source: str = ""
    upstream: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("Problem.name: must be a non-empty string")
        if not self.formal_statement.strip():
            raise ValueError(f"Problem.formal_statement of {self.name!r}: must not be empty")
        try:
            object.__setattr__(self, "language", Language(self.language))
        except ValueError:
            choices = ", ".join(language.value for language in Language)
            raise ValueError(
                f"Problem.language of {self.name!r}: must be one of {choices}, got {self.language!r}"
            ) from None

    @property
    def statement_hash(self) -> str:
        """A stable hash of what is being proved: language, header and formal statement.

        Resume compares it with the recorded one, so a problem whose statement changed is run again.
        Whitespace is kept: it can matter to Lean (indentation) and hashing it costs nothing.
        """
        digest = hashlib.sha256()
        for part in (self.language.value, self.header, self.formal_statement):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
        return digest.hexdigest()


Theorem = Problem
"""The former name of `Problem` (a Lean theorem to prove), kept so call sites need not all change at once."""


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

    # Written by hand rather than generated: the generated ones build a one-field tuple on every
    # call, and a search hashes and compares states several times per expansion (its node table).
    # Same semantics: the text only, and a `str` caches its own hash.
    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self.pp == other.pp  # type: ignore[attr-defined,no-any-return]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.pp)

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
    REPLY_MISMATCH = "reply_mismatch"
    """The worker's output is not the replies honest Lean gives to our requests, in order: forged or
    extra output, a reply not tied to its request (env numbers, the probe's nonce), or a `#print axioms`
    that does not tell the truth about the probe's canary. Never a pass, never retried."""


STANDARD_AXIOMS: frozenset[str] = frozenset({"propext", "Classical.choice", "Quot.sound"})
"""The only axioms a reported proof may depend on."""


class Judge(StrEnum):
    """Which check accepted (or rejected) a proof; every record and report names it.

    `COMPARATOR` is the Lean FRO's comparator: its verdict comes from a process that never elaborated
    the proof's text (exported declarations replayed into the kernel). `REPL` is the whole-file re-check
    in a Lean REPL process, which elaborates the untrusted text itself.
    """

    COMPARATOR = "comparator"
    REPL = "repl"


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
    judge: str = Judge.REPL.value
    """The `Judge` value of the check that gave this verdict (`repl` unless a final judge ran)."""

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.VALID

    def __post_init__(self) -> None:
        if self.status is not VerifyStatus.VALID and not self.reason:
            raise ValueError("VerifyResult.reason: a rejection must say why")


@dataclass(frozen=True, slots=True)
class InvalidStatement:
    """A problem's statement (or header) does not elaborate: a value, not an infrastructure failure.

    `LeanEnv.start` returns it instead of a session; the search reports it as
    `invalid_statement`, the evaluation records and summarises it, never retries it and never
    counts it toward the rule that stops a run after repeated infrastructure errors.
    `message` is Lean's own text (or the guard's reason when the text was refused before Lean).
    """

    problem_name: str
    message: str

    def __post_init__(self) -> None:
        if not self.message:
            raise ValueError("InvalidStatement.message: must say what is wrong with the statement")


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a checked text as Lean reports it: 1-based line, 0-based column in code points."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Hole:
    """One `sorry` (Lean) or gap in a checked text, with the goal it leaves and where it is.

    `state` is the goal as a proof state; its `handle` is the backend's way to open a session on
    this hole (`LeanEnv.start(problem, hole=...)`), so every hole of a file can be worked on, not
    only the last. `start`/`end` delimit the hole's own text (`sorry`) so the language backend can
    splice a proof in its place. `index` is the hole's position among the file's holes, in order.
    """

    index: int
    goal: str
    state: ProofState
    start: Position
    end: Position


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What the backend reported about a whole text: Lean's messages and the text's holes.

    `ok` means no error message; holes (and their `declaration uses 'sorry'` warnings) do not count
    as errors here, since checking a sketch with holes is the point. `text` is what was checked,
    header included.
    """

    text: str
    messages: tuple[LeanMessage, ...]
    holes: tuple[Hole, ...]
    seconds: float = 0.0

    @property
    def errors(self) -> tuple[LeanMessage, ...]:
        return tuple(message for message in self.messages if message.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors

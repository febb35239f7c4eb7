"""Sound whole-proof verification, shared by every backend.

A backend builds the check file with `build_check_file`, has Lean elaborate it in a fresh
environment, and hands the messages to `judge`. `judge` accepts only when:
- the text guard (`lean_env.guard`) let the proof through before it reached Lean;
- Lean reported no error;
- nothing used `sorry` (Lean's "declaration uses 'sorry'" warning, or `sorryAx` among the axioms);
- the checked text states the theorem asked for: after the problem's own header, the first declaration
  is the problem's statement, byte for byte after whitespace normalisation, and no other declaration of
  the text takes its name (`statement_unchanged` reads the checked text itself, not how it was built);
- `#print axioms` names nothing beyond `propext`, `Classical.choice`, `Quot.sound`, and Lean answered
  it exactly once for that declaration (a second answer can only be forged output).

The REPL backend runs the proof and the questions about it as two requests (`Probe`, `judge_probe`),
because the process that elaborates the proof also writes the replies: code run while elaborating
(a tactic's `(config := ...)` term is evaluated, so are Mathlib's `eval%` and `plausible`) can open
the process's own standard output and write a complete reply of its own. What each layer stops:

- the proof command carries no `#print axioms`: the axioms are asked in a second command sent only
  after the first reply was read, so an answer printed while the proof elaborates is not where the
  judge reads axioms (and an axioms report among the proof's own messages is itself a rejection);
- the second command is a `Probe` with a fresh random nonce: it declares a canary axiom and a canary
  theorem using it, and an alias of the theorem under a nonce name, and asks `#print axioms` about the
  canary and the alias. Output written in advance cannot contain names drawn after it was written, so
  a forged reply read in place of a real one fails the nonce check (`VerifyStatus.REPLY_MISMATCH`);
- the canary has a known, non-empty axiom list: a `#print axioms` rewritten to always say "does not
  depend on any axioms" (a header's `macro_rules`), or one rewritten for the theorem's own name only
  (the alias's name is unpredictable) is caught the same way;
- the alias is typed by the statement asked for, elaborated afresh from the problem's text
  (`axiom <nonce> <signature>` then `theorem <alias> : type_of% @<nonce> := @name`): Lean itself
  checks that the declaration it elaborated has the statement's type (`STATEMENT_CHANGED` otherwise);
- the env numbers of the replies, and a closing sentinel request whose reply must be the next empty
  one (so no forged block is left in between), are checked by the backend (`lean_env.repl.env`),
  which also runs each check in a fresh worker used for nothing else and discarded afterwards, so
  nothing a proof did can answer another check.

Not stopped here: code that reads the worker's standard input (through `/dev/stdin`) and keeps a
background task running can see the probe and answer it; elaborator-level rewrites of `#print axioms`
in a header that inspect what they are asked about. Those need a verdict from a process that never
elaborated the text (`Judge.COMPARATOR`), or a header policy that refuses such headers.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from lean_env import lean_syntax
from lean_env.guard import check_proof_text
from lean_env.lean_syntax import LEAN, declarations, statement_head
from lean_env.types import STANDARD_AXIOMS, LeanMessage, Problem, VerifyResult, VerifyStatus

# Lean's answer to `#print axioms n`: "'n' depends on axioms: [a, b]" or "'n' does not depend on any
# axioms". The name may itself contain `'`, hence the lazy match anchored on the text that follows.
_AXIOMS_REPORT = re.compile(
    r"'(?P<name>[^\n]*?)' (?:depends on axioms:\s*\[(?P<axioms>[^\]]*)\]|(?P<none>does not depend on any axioms))"
)
_SORRY_WARNING = re.compile(r"declaration uses ['`]sorry['`]")
_WHITESPACE = re.compile(r"\s+")


def declaration_name(theorem: Problem) -> str:
    """The name `#print axioms` must be asked about: the one in the statement, not the record's label."""
    try:
        return lean_syntax.declaration_name(theorem.formal_statement)
    except ValueError:
        raise ValueError(f"Theorem {theorem.name!r}: formal_statement does not start with `theorem <name>`") from None


def build_check_file(theorem: Problem, proof: str) -> str:
    """The text Lean re-checks: `LEAN.proof_file` (header, unchanged statement, proof) and `#print axioms`."""
    return LEAN.proof_file(theorem, proof) + f"\n#print axioms {declaration_name(theorem)}\n"


def normalize_statement(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def statement_unchanged(theorem: Problem, checked_text: str) -> bool:
    """Whether `checked_text` states `theorem` as asked for, read from the checked text itself.

    The text must begin with the problem's header; after it, the first declaration must be the
    problem's statement (its signature, up to the `:=`, equal after whitespace normalisation, with
    nothing but the statement's own docstring before it), and no later declaration of the text may
    take the same name. A file laid out by any other rule than the problem's, or a proof text that
    goes on to declare the theorem again, fails.
    """
    if not checked_text.startswith(theorem.header):
        return False
    name = declaration_name(theorem)
    wanted = declarations(theorem.formal_statement)[0]
    if wanted.signature_end < 0:
        return normalize_statement(checked_text[len(theorem.header) :]).startswith(
            normalize_statement(theorem.formal_statement)
        )
    rest = checked_text[len(theorem.header) :]
    found = declarations(rest)
    if not found or found[0].name != name or found[0].signature_end < 0:
        return False
    first = found[0]
    if any(other.name == name for other in found[1:]):
        return False
    preamble = normalize_statement(theorem.formal_statement[: wanted.start])
    if normalize_statement(rest[: first.start]) != preamble:
        return False
    expected = theorem.formal_statement[wanted.start : wanted.signature_end - 2]
    return normalize_statement(rest[first.start : first.signature_end - 2]) == normalize_statement(expected)


def _same_declaration(printed: str, name: str) -> bool:
    """Whether Lean's printed (fully qualified) name is the declaration `name` (short or qualified)."""
    printed = printed.replace("«", "").replace("»", "")
    name = name.replace("«", "").replace("»", "")
    return printed == name or printed.endswith("." + name) or name.endswith("." + printed)


def axiom_reports(messages: Sequence[LeanMessage], name: str) -> list[tuple[str, ...]]:
    """Every answer to `#print axioms name` found in `messages`, in order (normally exactly one)."""
    return [axioms for printed, axioms in _all_axiom_reports(messages) if _same_declaration(printed, name)]


def _proof_part(theorem: Problem, checked_text: str) -> str | None:
    """The proof inside a file made by `LEAN.proof_file` (or `build_check_file`), or None when laid out otherwise."""
    prefix = f"{theorem.header}{statement_head(theorem.formal_statement)} := "
    suffix = f"\n#print axioms {declaration_name(theorem)}\n"
    if not checked_text.startswith(prefix):
        return None
    end = len(checked_text) - len(suffix) if checked_text.endswith(suffix) else len(checked_text)
    return checked_text[len(prefix) : end]


def _axioms_verdict(axioms: tuple[str, ...]) -> tuple[VerifyStatus, str]:
    """The verdict the axioms of an otherwise clean proof give: `sorryAx`, non-standard ones, or valid."""
    if "sorryAx" in axioms:
        return VerifyStatus.SORRY, "the proof depends on `sorryAx`"
    extra = sorted(set(axioms) - STANDARD_AXIOMS)
    if extra:
        return VerifyStatus.NONSTANDARD_AXIOMS, f"the proof depends on non-standard axioms: {', '.join(extra)}"
    return VerifyStatus.VALID, ""


def _guard_or_error(
    theorem: Problem, checked_text: str, messages: Sequence[LeanMessage]
) -> tuple[VerifyStatus, str] | None:
    """The rejections both judges share: the guard on the proof found in the text, then Lean's errors."""
    proof = _proof_part(theorem, checked_text)
    if proof is not None:
        # Defence in depth: a backend that skipped `precheck` still cannot get a guarded proof accepted.
        problem = check_proof_text(proof)
        if problem is not None:
            return VerifyStatus.GUARD_REJECTED, problem
    errors = [m for m in messages if m.is_error]
    if errors:
        return VerifyStatus.LEAN_ERROR, f"Lean reported an error: {errors[0].text.strip()[:500]}"
    return None


def precheck(theorem: Problem, proof: str) -> VerifyResult | None:
    """The text-level checks that run before Lean: a rejection, or None when Lean should check it."""
    problem = check_proof_text(proof)
    if problem is not None:
        return VerifyResult(VerifyStatus.GUARD_REJECTED, reason=problem, checked_text=LEAN.proof_file(theorem, proof))
    return None


def judge(
    theorem: Problem,
    checked_text: str,
    messages: Sequence[LeanMessage],
    seconds: float = 0.0,
    *,
    header_lines: int = 0,
) -> VerifyResult:
    """Turn Lean's messages about `checked_text` (from `build_check_file`) into a verdict.

    `header_lines`: when the header is a whole source file up to the theorem (LeanDojo's traced
    files, whose other theorems may be `sorry`), a "declaration uses 'sorry'" warning positioned on
    lines 1..header_lines belongs to those other declarations and is ignored; a proof that relies on
    one of them still fails, since `sorryAx` then shows in `#print axioms`. Errors count everywhere.
    Positions must then be the line numbers of `checked_text` itself.
    """
    texts = tuple(f"{m.severity.value}: {m.text}" for m in messages)

    def verdict(status: VerifyStatus, reason: str = "", axioms: tuple[str, ...] = ()) -> VerifyResult:
        return VerifyResult(
            status, reason=reason, messages=texts, axioms=axioms, checked_text=checked_text, seconds=seconds
        )

    if not statement_unchanged(theorem, checked_text):
        return verdict(VerifyStatus.STATEMENT_CHANGED, "the checked file does not state the theorem asked for")
    rejected = _guard_or_error(theorem, checked_text, messages)
    if rejected is not None:
        return verdict(*rejected)
    if any(_SORRY_WARNING.search(m.text) and not (0 < m.line <= header_lines) for m in messages):
        return verdict(VerifyStatus.SORRY, "the proof uses `sorry`")
    reports = axiom_reports(messages, declaration_name(theorem))
    if not reports:
        return verdict(VerifyStatus.LEAN_ERROR, "Lean did not answer `#print axioms`; the declaration may be missing")
    if len(reports) > 1:
        return verdict(
            VerifyStatus.LEAN_ERROR,
            f"`#print axioms` was answered {len(reports)} times; extra answers can only be forged output",
        )
    axioms = reports[0]
    return verdict(*_axioms_verdict(axioms), axioms)


# --- the REPL's two-request check -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """The trusted second command of a check: questions about the proved theorem under fresh names.

    Build it with `make_probe` after the proof text is fixed; `nonce` is drawn from `secrets`, so
    nothing written before the probe was sent can name its declarations. `command` runs in the
    environment the proof command left. Lines (1-based, within `command`): `statement_line` restates
    the problem's statement as an axiom, `alias_line` types the alias by it.
    """

    nonce: str
    command: str
    canary_axiom: str
    canary: str
    statement: str
    alias: str
    statement_line: int
    alias_line: int

    @property
    def own_names(self) -> frozenset[str]:
        return frozenset({self.canary_axiom, self.canary, self.statement, self.alias})


def make_probe(theorem: Problem, nonce: str | None = None) -> Probe:
    """The probe for `theorem`'s check (a fresh random nonce unless one is given, for tests)."""
    nonce = nonce if nonce is not None else secrets.token_hex(8)
    if not re.fullmatch(r"[0-9a-zA-Z]+", nonce):
        raise ValueError("make_probe: the nonce must be alphanumeric")
    name = declaration_name(theorem)
    wanted = declarations(theorem.formal_statement)[0]
    statement_text = theorem.formal_statement
    # Universe parameters (`theorem t.{u}`) are written after the name, before the binders.
    name_at = statement_text.index(name, wanted.start) + len(name)
    universes = statement_text[name_at : wanted.name_end].strip()
    end = wanted.signature_end - 2 if wanted.signature_end >= 0 else len(statement_text)
    signature = " ".join(statement_text[wanted.name_end : end].split())
    canary_axiom = f"lean_env_canary_ax_{nonce}"
    canary = f"lean_env_canary_{nonce}"
    statement = f"lean_env_statement_{nonce}"
    alias = f"lean_env_alias_{nonce}"
    lines = [
        f"axiom {canary_axiom} : True",
        f"theorem {canary} : True := {canary_axiom}",
        f"axiom {statement}{universes} {signature}",
        f"theorem {alias}{universes} : type_of% @{statement}{universes} := @{name}{universes}",
        f"#print axioms {canary}",
        f"#print axioms {alias}",
    ]
    return Probe(
        nonce=nonce,
        command="\n".join(lines) + "\n",
        canary_axiom=canary_axiom,
        canary=canary,
        statement=statement,
        alias=alias,
        statement_line=3,
        alias_line=4,
    )


def _all_axiom_reports(messages: Sequence[LeanMessage]) -> list[tuple[str, tuple[str, ...]]]:
    reports: list[tuple[str, tuple[str, ...]]] = []
    for message in messages:
        for found in _AXIOMS_REPORT.finditer(message.text):
            axioms = (
                ()
                if found.group("none") is not None
                else tuple(part.strip() for part in found.group("axioms").split(",") if part.strip())
            )
            reports.append((found.group("name"), axioms))
    return reports


def judge_probe(
    theorem: Problem,
    checked_text: str,
    proof_messages: Sequence[LeanMessage],
    probe: Probe,
    probe_messages: Sequence[LeanMessage],
    seconds: float = 0.0,
) -> VerifyResult:
    """The verdict on a proof checked as two requests: `checked_text`, then `probe.command` after it.

    `proof_messages` are Lean's messages about the proof command, `probe_messages` about the probe.
    Accepts only when the checked text states the theorem, the guard passes, the probe's answers are
    the ones honest Lean gives (the canary depends on exactly its own axiom, each question answered
    once, no axioms report among the proof's own messages), the proof command has no error and no
    `sorry`, Lean accepts the alias at the statement's type, and the alias depends on nothing beyond
    the standard axioms. The backend checks the replies' order and env numbers before calling this.
    """
    texts = tuple(f"{m.severity.value}: {m.text}" for m in (*proof_messages, *probe_messages))

    def verdict(status: VerifyStatus, reason: str = "", axioms: tuple[str, ...] = ()) -> VerifyResult:
        return VerifyResult(
            status, reason=reason, messages=texts, axioms=axioms, checked_text=checked_text, seconds=seconds
        )

    if not statement_unchanged(theorem, checked_text):
        return verdict(VerifyStatus.STATEMENT_CHANGED, "the checked file does not state the theorem asked for")
    # Integrity of the replies first: when they lie, nothing else in them means anything.
    own = _all_axiom_reports(proof_messages)
    if own:
        return verdict(
            VerifyStatus.REPLY_MISMATCH,
            f"the proof's own output contains a `#print axioms` answer (about {own[0][0]!r}); only forged output can",
        )
    reports = _all_axiom_reports(probe_messages)
    canary = [axioms for printed, axioms in reports if _same_declaration(printed, probe.canary)]
    alias = [axioms for printed, axioms in reports if _same_declaration(printed, probe.alias)]
    strangers = [
        printed
        for printed, _ in reports
        if not (_same_declaration(printed, probe.canary) or _same_declaration(printed, probe.alias))
    ]
    if len(canary) != 1 or not (len(canary[0]) == 1 and _same_declaration(canary[0][0], probe.canary_axiom)):
        return verdict(
            VerifyStatus.REPLY_MISMATCH,
            "the probe's canary was not reported as depending on exactly its own axiom "
            f"(got {canary!r}): the reply is not tied to the request, or `#print axioms` does not tell the truth",
        )
    if strangers:
        return verdict(
            VerifyStatus.REPLY_MISMATCH,
            f"the probe's reply answers `#print axioms` about {strangers[0]!r}, never asked",
        )
    rejected = _guard_or_error(theorem, checked_text, proof_messages)
    if rejected is not None:
        return verdict(*rejected)
    if any(_SORRY_WARNING.search(m.text) for m in (*proof_messages, *probe_messages)):
        return verdict(VerifyStatus.SORRY, "the proof uses `sorry`")
    probe_errors = [m for m in probe_messages if m.is_error]
    if probe_errors:
        first = probe_errors[0]
        if first.line in (probe.statement_line, probe.alias_line):
            return verdict(
                VerifyStatus.STATEMENT_CHANGED,
                f"Lean's `{declaration_name(theorem)}` does not have the type of the statement asked for: "
                f"{first.text.strip()[:500]}",
            )
        return verdict(VerifyStatus.REPLY_MISMATCH, f"the probe failed where honest Lean cannot: {first.text[:500]}")
    if len(alias) != 1:
        return verdict(
            VerifyStatus.REPLY_MISMATCH, f"`#print axioms` of the theorem was answered {len(alias)} times, not once"
        )
    axioms = tuple(a for a in alias[0] if a.rsplit(".", 1)[-1] not in probe.own_names)
    return verdict(*_axioms_verdict(axioms), axioms)

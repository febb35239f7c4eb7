"""What a header may hold, and how large the texts sent to Lean may be: the source policy.

A header goes to the worker verbatim, ahead of the statement and the proof, so it is as powerful as
Lean itself: it could add an axiom, switch off the `sorry` warning (`set_option warn.sorry false`),
rewrite `#print axioms` with `macro_rules`, or run `#eval` when the worker starts. `check_header`
therefore accepts only three commands:
- `import M` of modules matching `SourcePolicy.allowed_imports`;
- `open A B`, `open scoped A`, `open A (x) hiding y renaming z → w` and any of those with `in`, of
  namespaces the guard allows (never `Lean`, no forbidden name anywhere in the clause);
- `set_option NAME VALUE` (optionally `... in`) with NAME in `SourcePolicy.allowed_options` and VALUE
  a number or a Boolean.
Everything else (declarations, `attribute`, `macro_rules`, `#eval`, `#exit`, `variable`, ...) is
refused with a message naming the offending line. Comments and docstrings may appear anywhere.

The header is read with the guard's tokenizer (`lean_env.guard.tokenize`), which reads comments,
strings and `«»` names as Lean does and refuses hidden characters; its names and the policy's
look-alike rules are the guard's, so the two can never disagree about what a word is.

The policy is part of the settings (`lean.policy`): an operator may widen the allow-lists or the
size limits in the configuration; nothing a request carries can. Defaults fit every miniF2F-lean4
problem (the plain, Llemma and DeepSeek variants) with room; see the field docstrings.
"""

from __future__ import annotations

import fnmatch
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lean_env.guard import (
    ALLOWED_OPTIONS,
    COMMAND_WORDS,
    MAX_HEADER_BYTES,
    MAX_PROOF_BYTES,
    MAX_STATEMENT_BYTES,
    GuardViolation,
    Token,
    check_statement_text,
    lookalike_problem,
    scan_open,
    size_problem,
    tokenize,
)
from lean_env.types import Language, Problem

DEFAULT_IMPORTS: tuple[str, ...] = (
    "Mathlib",
    "Mathlib.*",
    "Aesop",
    "Aesop.*",
    "Batteries",
    "Batteries.*",
    "MiniF2F.Minif2fImport",
)
"""What miniF2F headers import (`Mathlib`; `Mathlib` and `Aesop` for DeepSeek; `MiniF2F.Minif2fImport`
for the Llemma variant), with the submodules of Mathlib, Aesop and Batteries."""

_MODULE_PATTERN = re.compile(r"[^*?\[\]]+(?:\.\*)?")
"""A module name, optionally followed by `.*`; no other wildcard, so no pattern allows every module."""
_HEADER_COMMANDS = frozenset({"import", "open", "set_option"})


class SourcePolicy(BaseModel):
    """The header allow-lists and the size limits (`[lean.policy]` in the settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    allowed_imports: tuple[str, ...] = DEFAULT_IMPORTS
    """Modules a header may import: a module name (`Mathlib`), or a prefix with `.*` for its submodules
    (`Mathlib.*`). No other wildcard (a bare `*` is refused): widen by naming what to allow."""
    allowed_options: tuple[str, ...] = tuple(sorted(ALLOWED_OPTIONS))
    """Options a header may set (`set_option NAME VALUE`): by default the resource limits a proof may
    also set (miniF2F's headers use `maxHeartbeats`)."""
    max_statement_bytes: int = Field(default=MAX_STATEMENT_BYTES, ge=1)
    """Largest statement, in UTF-8 bytes. Default 16384: the longest miniF2F statement is 679 bytes."""
    max_header_bytes: int = Field(default=MAX_HEADER_BYTES, ge=1)
    """Largest header, in UTF-8 bytes. Default 8192: the longest miniF2F header is 98 bytes."""
    max_proof_bytes: int = Field(default=MAX_PROOF_BYTES, ge=1)
    """Largest proof or tactic, in UTF-8 bytes. Default 131072: a 100-expansion search proof of 256-token
    tactics stays well under it."""

    @field_validator("allowed_imports")
    @classmethod
    def _module_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not _MODULE_PATTERN.fullmatch(pattern):
                raise ValueError(f"{pattern!r} is not a module name or a `Prefix.*` pattern (no other wildcard)")
        return value

    def allows_import(self, module: str) -> bool:
        """Whether `import module` is allowed (`Mathlib.*` matches `Mathlib.Tactic.Ring`, not `Mathlib`)."""
        return any(fnmatch.fnmatchcase(module, pattern) for pattern in self.allowed_imports)


DEFAULT_POLICY = SourcePolicy()
"""The default policy, for callers that were given none."""


def _line_text(header: str, line: int) -> str:
    lines = header.splitlines()
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return text if len(text) <= 80 else text[:77] + "..."


def _refusal(header: str, token: Token, why: str) -> str:
    return f"the header's line {token.line} (`{_line_text(header, token.line)}`) {why}"


def _scan_import(header: str, tokens: list[Token], index: int, policy: SourcePolicy) -> tuple[str | None, int]:
    keyword = tokens[index]
    index += 1
    modules = 0
    while index < len(tokens) and tokens[index].kind == "ident" and tokens[index].name not in _HEADER_COMMANDS:
        module = tokens[index]
        if not policy.allows_import(module.name):
            allowed = ", ".join(policy.allowed_imports)
            return _refusal(
                header, module, f"imports `{module.name}`, which is not allowed (allowed: {allowed})"
            ), index
        modules += 1
        index += 1
    if modules == 0:
        found = f" (`{tokens[index].text}`)" if index < len(tokens) else ""
        return _refusal(header, keyword, f"has an `import` without a module name{found}"), index
    return None, index


def _scan_set_option(header: str, tokens: list[Token], index: int, policy: SourcePolicy) -> tuple[str | None, int]:
    keyword = tokens[index]
    if index + 2 >= len(tokens):
        return _refusal(header, keyword, "has a `set_option` without a name and a value"), index
    option, value = tokens[index + 1], tokens[index + 2]
    if option.kind != "ident" or option.name not in policy.allowed_options:
        allowed = ", ".join(policy.allowed_options)
        return _refusal(header, option, f"sets the option `{option.text}`; a header may only set {allowed}"), index
    if not (value.kind == "number" or (value.kind == "ident" and value.name in ("true", "false"))):
        return _refusal(header, value, f"sets `{option.name}` to `{value.text}`, not a number or a Boolean"), index
    index += 3
    if index < len(tokens) and tokens[index].kind == "ident" and tokens[index].name == "in":
        index += 1
    return None, index


def _scan_open(header: str, tokens: list[Token], index: int) -> tuple[str | None, int]:
    keyword = tokens[index]
    problem, end = scan_open(tokens, index, COMMAND_WORDS | _HEADER_COMMANDS | {"in"})
    if problem is not None:
        return _refusal(header, tokens[end], problem), end
    if end == index + 1:
        found = f" (found `{tokens[end].text}`)" if end < len(tokens) else ""
        return _refusal(header, keyword, f"has an `open` without a namespace{found}"), end
    if end < len(tokens) and tokens[end].kind == "ident" and tokens[end].name == "in":
        end += 1
    return None, end


def check_header(header: str, policy: SourcePolicy = DEFAULT_POLICY) -> str | None:
    """Why `header` must not be put before a statement, or None when it may.

    Checks the size first, then every command (see the module docstring). The reason names the
    first offending line by number and text: "the header's line 7 (`axiom cheat : False`) ...".
    """
    too_large = size_problem(header, policy.max_header_bytes, "the header", "lean.policy.max_header_bytes")
    if too_large is not None:
        return too_large
    try:
        tokens = tokenize(header)
    except GuardViolation as violation:
        return f"the header {violation}"
    imitation = lookalike_problem(header, tokens)
    if imitation is not None:
        return f"the header {imitation}"
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name = token.name if token.kind == "ident" else ""
        if name == "import":
            problem, index = _scan_import(header, tokens, index, policy)
        elif name == "open":
            problem, index = _scan_open(header, tokens, index)
        elif name == "set_option":
            problem, index = _scan_set_option(header, tokens, index, policy)
        else:
            problem = _refusal(
                header,
                token,
                f"starts with `{token.text}`; a header may only `import` allowed modules, `open` namespaces "
                "and `set_option` allowed options",
            )
        if problem is not None:
            return problem
    return None


def check_sizes(
    policy: SourcePolicy = DEFAULT_POLICY,
    *,
    statement: str | None = None,
    header: str | None = None,
    proof: str | None = None,
) -> str | None:
    """Why one of the given texts is over its size limit, or None. Cheap on any input; run it first."""
    for text, limit, what, setting in (
        (statement, policy.max_statement_bytes, "the statement", "lean.policy.max_statement_bytes"),
        (header, policy.max_header_bytes, "the header", "lean.policy.max_header_bytes"),
        (proof, policy.max_proof_bytes, "the proof", "lean.policy.max_proof_bytes"),
    ):
        if text is not None:
            problem = size_problem(text, limit, what, setting)
            if problem is not None:
                return problem
    return None


def enforce_policy(problem: Problem, policy: SourcePolicy = DEFAULT_POLICY) -> str | None:
    """Why `problem` must not go to Lean at all, or None: the sizes, the header, the statement guard.

    For an env or a service to call before starting a session or verifying: a reason here is the
    message of an `InvalidStatement` (or of a `GUARD_REJECTED` verdict). Problems in other languages
    are not Lean's business and pass (None).
    """
    if problem.language is not Language.LEAN4:
        return None
    too_large = check_sizes(policy, statement=problem.formal_statement, header=problem.header)
    if too_large is not None:
        return too_large
    return check_header(problem.header, policy) or check_statement_text(
        problem.formal_statement, max_bytes=policy.max_statement_bytes
    )

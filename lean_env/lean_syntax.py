"""Lean 4 syntax the backends need: finding a declaration, where its signature ends, rendering proofs.

One comment- and string-aware scanner (`mask`) underlies every rule here: it blanks out comments
(`--`, nested `/- -/`, docstrings), string and character literals and `«...»` names, keeping every
other character (and every line break) in place. Rules then run on the masked text, so a `:=` or a
`theorem` inside a comment or a string is never taken for syntax, and an index found in the masked
text is the same index in the original.

`LEAN` (a `LeanSyntax`) is the `ProofLanguage` of the Lean backends: the search asks it to render a
tactic sequence, verification asks it for the checked file, and the informal pipeline asks it to
splice proofs into a sketch's holes. No other module builds Lean text.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from lean_env.types import Hole, Language, Position, Problem

_OPENING = {"(": ")", "[": "]", "{": "}", "⦃": "⦄", "⟨": "⟩", "⟦": "⟧", "⦅": "⦆", "⟪": "⟫", "‹": "›"}
"""Every bracket pair Lean binders and terms use; a `:=` inside any of them does not end a signature."""
_CLOSING = frozenset(_OPENING.values())
BRACKETS: dict[str, str] = dict(_OPENING)
"""Opening bracket -> closing bracket, for other scanners (the guard's) that must balance the same set."""
_CHAR_LITERAL = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")
_RAW_STRING = re.compile(r'r(#*)"')
_INDENT = "  "


def _is_identifier_char(char: str) -> bool:
    return char.isalnum() or char in "_'!?." or "\u2080" <= char <= "\u209c" or char in "ᵢᵣᵤᵥ"


def block_comment_end(text: str, start: int) -> int:
    """Index just past the block comment `/- ... -/` opening at `start` (they nest), or -1 if never closed."""
    depth = 1
    index = start + 2
    length = len(text)
    while index < length:
        if text.startswith("/-", index):
            depth += 1
            index += 2
        elif text.startswith("-/", index):
            depth -= 1
            index += 2
            if depth == 0:
                return index
        else:
            index += 1
    return -1


def mask(text: str) -> str:
    """`text` with comments, string/char literals and `«»` names replaced by spaces (line breaks kept).

    The result has the same length as `text`, so positions carry over. An unterminated comment or
    string runs to the end of the text, as Lean's own scanner would read it.
    """
    return _mask(text, names=" ")


def _mask(text: str, *, names: str) -> str:
    """`mask`, with the characters of a `«»` name replaced by `names` (a space, or an identifier letter)."""
    out = list(text)
    length = len(text)

    def blank(start: int, stop: int) -> None:
        for position in range(start, min(stop, length)):
            if out[position] != "\n":
                out[position] = " "

    index = 0
    while index < length:
        char = text[index]
        if char == "-" and text.startswith("--", index):
            stop = text.find("\n", index)
            stop = length if stop < 0 else stop
            blank(index, stop)
            index = stop
        elif char == "/" and text.startswith("/-", index):
            cursor = block_comment_end(text, index)
            cursor = length if cursor < 0 else cursor
            blank(index, cursor)
            index = cursor
        elif char == '"' or (char == "r" and _RAW_STRING.match(text, index) and not _after_identifier(text, index)):
            index = _skip_string(text, index, blank)
        elif char == "'" and not _after_identifier(text, index):
            literal = _CHAR_LITERAL.match(text, index)
            if literal is not None:
                blank(index, literal.end())
                index = literal.end()
            else:
                index += 1
        elif char == "«":
            stop = text.find("»", index)
            stop = length if stop < 0 else stop + 1
            for position in range(index, stop):
                if out[position] != "\n":
                    out[position] = names
            index = stop
        else:
            index += 1
    return "".join(out)


def _after_identifier(text: str, index: int) -> bool:
    return index > 0 and _is_identifier_char(text[index - 1])


def _skip_string(text: str, index: int, blank: object) -> int:
    """Blank the string literal starting at `index` (plain or raw) and return the index after it."""
    assert callable(blank)
    raw = _RAW_STRING.match(text, index) if text[index] == "r" else None
    if raw is not None:
        closing = '"' + raw.group(1)
        stop = text.find(closing, raw.end())
        stop = len(text) if stop < 0 else stop + len(closing)
        blank(index, stop)
        return stop
    cursor = index + 1
    while cursor < len(text):
        if text[cursor] == "\\":
            cursor += 2
            continue
        if text[cursor] == '"':
            cursor += 1
            break
        cursor += 1
    blank(index, cursor)
    return cursor


_COMMAND_START = re.compile(
    r"\n(?=(?:@\[|(?:private|protected|noncomputable|nonrec|partial|unsafe)\s|theorem\s|lemma\s|def\s|example[\s:]"
    r"|instance[\s:]|abbrev\s|axiom\s|structure\s|class\s|inductive\s|opaque\s|#|end\b|namespace\s|section\b"
    r"|open\s|variable\s|universe\s|set_option\s|import\s|attribute\s|macro\s|syntax\s|notation\s|elab\s))"
)
"""A line break followed, at column 0, by the start of another command: a signature never runs past it."""


def signature_end(text: str, start: int = 0, *, masked: str | None = None) -> int:
    """Index just past the `:=` that ends the signature beginning at `start`, or -1 if there is none.

    Brackets of every kind Lean binders and terms use are balanced, and comments and strings are
    ignored, so `(h : x := 3)` default arguments and `-- a := b` comments do not end the signature.
    The search stops at the next command starting at column 0 (`theorem`, `def`, `#check`, ...), so
    a signature without `:=` (`| 0 => ...` arms, `where`) never borrows a later declaration's.
    """
    scan = masked if masked is not None else mask(text)
    depth = 0
    index = start
    stop = _COMMAND_START.search(scan, start)
    limit = stop.start() if stop is not None else len(scan)
    while index < limit - 1:
        char = scan[index]
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth = max(0, depth - 1)
        elif char == ":" and scan[index + 1] == "=" and depth == 0:
            return index + 2
        index += 1
    return -1


_NAME = r"(?:[^\s(){}\[\]⦃⦄⟨⟩:.,]|\.(?!\{))+"
_DECLARATION = re.compile(
    r"(?m)^[ \t]*(?:@\[[^\]]*\][ \t\n]*)*(?:(?:private|protected|noncomputable|nonrec)[ \t]+)*"
    rf"(?P<kind>theorem|lemma)[ \t]+(?P<name>{_NAME})(?P<universes>\.\{{[^}}]*\}})?"
)


@dataclass(frozen=True, slots=True)
class Declaration:
    """A `theorem`/`lemma` found in a Lean text.

    `start` is where the declaration (its attributes, not its docstring) begins, `signature_end`
    is just past its `:=` (-1 when it has none), `name` is its name without universe parameters
    (`t` for `theorem t.{u}`, `«my thm»` keeps its guillemets) and `name_end` is just past the name
    and its universe parameters, where the binders begin.
    """

    name: str
    start: int
    signature_end: int
    name_end: int = -1


def declarations(text: str) -> list[Declaration]:
    """Every `theorem`/`lemma` of `text` outside comments and strings, in order.

    A declaration whose signature has no `:=` is listed with `signature_end == -1`.
    """
    # `«»` names are filled with a letter, not blanked, so `theorem «a b»` is still a declaration.
    scan = _mask(text, names="x")
    found: list[Declaration] = []
    for match in _DECLARATION.finditer(scan):
        end = signature_end(text, match.end(), masked=scan)
        found.append(
            Declaration(
                name=text[match.start("name") : match.end("name")],
                start=match.start(),
                signature_end=end,
                name_end=match.end(),
            )
        )
    return found


def split_declaration(text: str, name: str | None = None) -> tuple[str, str, str, str] | None:
    """Split Lean source at a theorem: `(header, name, statement through ":= by", rest after ":=")`.

    Takes the theorem called `name`, or the first one when `name` is None; None when there is none or
    its signature has no `:=`. The header is the text before the declaration (a docstring right
    before it stays in the header).
    """
    for declaration in declarations(text):
        if name is not None and declaration.name != name:
            continue
        if declaration.signature_end < 0:
            return None
        start, end = declaration.start, declaration.signature_end
        return text[:start], declaration.name, text[start:end] + " by", text[end:]
    return None


def declaration_name(statement: str) -> str:
    """The declared name of a statement (`theorem t.{u} ...` gives `t`); raises ValueError if none."""
    found = declarations(statement)
    if not found:
        raise ValueError(f"the statement does not start with `theorem <name>`: {statement.strip()[:80]!r}")
    return found[0].name


# A header line: `import M`, `open A B`, or `set_option NAME VALUE` (not the `... in` forms, which bind to
# the command after them), or blank.
_HEADER_LINE = re.compile(
    r"[ \t]*(?:(?:import|open|set_option)[ \t](?![^\n]*[ \t]in[ \t]*(?:\n|$))[^\n]*)?[ \t]*(?:\n|$)"
)


def split_header(text: str) -> tuple[str, str]:
    """`(header, body)`: the leading `import`, `open` and `set_option` lines of `text`, and the rest.

    Those are what a header may hold (`lean_env.source_policy`); blank and comment lines among and
    after them stay in the header. The header ends at a line break (or the end of the text), so a
    body position is the text's own position moved down by `header.count("\n")` lines. A text that
    starts with anything else has an empty header.
    """
    scan = mask(text)
    index = 0
    imports = False
    while index < len(scan):
        line = _HEADER_LINE.match(scan, index)
        if line is None or line.end() == index:
            break
        imports = imports or bool(line.group().strip())
        index = line.end()
    if not imports:
        return "", text
    return text[:index], text[index:]


def statement_head(statement: str) -> str:
    """The statement up to, not including, the `:=` that ends its signature (and any `by` after it)."""
    end = signature_end(statement)
    if end < 0:
        return statement.rstrip()
    return statement[: end - 2].rstrip()


def render_tactics(tactics: Sequence[str]) -> str:
    """A `by` block that replays `tactics` in order, each indented one level.

    A multi-line tactic (a `calc`, a `·`-focused block, `induction ... with` arms) keeps its lines'
    indentation relative to its first line, so it parses in the block exactly as it did when it was
    run on its own in tactic mode.
    """
    if not tactics:
        raise ValueError("render_tactics: a proof needs at least one tactic")
    body: list[str] = []
    for tactic in tactics:
        for line in clean_tactic(tactic).splitlines():
            body.append(_INDENT + line if line.strip() else "")
    return "by\n" + "\n".join(body)


def clean_tactic(text: str) -> str:
    """A candidate as it will be sent to Lean: trailing spaces and surrounding blank lines removed.

    Inner line structure is kept, since indentation is significant in Lean tactic blocks.
    """
    if text.isprintable() and text == text.strip():
        # The common case, one line with nothing to trim (every line break is non-printable).
        return text
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return textwrap.dedent("\n".join(lines))


def offset_of(text: str, position: Position) -> int:
    """The index in `text` of a Lean position (1-based line, 0-based code-point column)."""
    if position.line < 1:
        raise ValueError(f"position {position}: lines start at 1")
    index = 0
    for _ in range(position.line - 1):
        index = text.find("\n", index)
        if index < 0:
            raise ValueError(f"position {position} is past the end of the text")
        index += 1
    line_end = text.find("\n", index)
    line_end = len(text) if line_end < 0 else line_end
    if index + position.column > line_end:
        raise ValueError(f"position {position} is past the end of its line")
    return index + position.column


_TERM_BEFORE = re.compile(r"(?::=|\(|,|=>|↦|\bfrom|\bexact|\brefine|\buse)\s*$")
_TACTIC_BEFORE = re.compile(r"(?:\bby|·|;|<;>)[ \t]*$|(?:^|\n)[ \t]*$")


def _in_term_position(masked: str, index: int) -> bool:
    """Whether the hole at `index` stands where a term goes (`:= sorry`) rather than a tactic (`by sorry`)."""
    before = masked[max(0, index - 200) : index]
    if re.search(r":=\s*$", before):
        return True
    if _TACTIC_BEFORE.search(before):
        return False
    return _TERM_BEFORE.search(before) is not None


class LeanSyntax:
    """The `ProofLanguage` of Lean 4: how proofs become files, and how holes are filled."""

    language = Language.LEAN4

    def render_tactics(self, tactics: Sequence[str]) -> str:
        return render_tactics(tactics)

    def proof_file(self, problem: Problem, proof: str) -> str:
        """The whole file for `proof` (a term, typically a `by` block), placed after the statement's `:=`.

        The statement text up to `:=` stays byte-identical to the one asked for.
        """
        return f"{problem.header}{statement_head(problem.formal_statement)} := {proof}\n"

    def declaration_name(self, problem: Problem) -> str:
        return declaration_name(problem.formal_statement)

    def splice(self, text: str, holes: Sequence[Hole], proofs: Sequence[Sequence[str]]) -> str:
        """`text` with each hole's `sorry` replaced by the tactics that close it.

        A hole in tactic position (`by sorry`, a `sorry` line in a tactic block) becomes the tactics,
        each further line indented to the hole's column; a hole in term position (`:= sorry`)
        becomes a `by` block indented one level past the hole's line. Holes are spliced from the
        last to the first, so earlier positions stay valid.
        """
        if len(holes) != len(proofs):
            raise ValueError(f"splice: {len(holes)} holes but {len(proofs)} proofs")
        scan = mask(text)
        spans: list[tuple[int, int, Sequence[str]]] = []
        for hole, tactics in zip(holes, proofs, strict=True):
            if not tactics:
                raise ValueError(f"splice: no tactics for hole {hole.index}")
            start, end = offset_of(text, hole.start), offset_of(text, hole.end)
            spans.append((start, end, tactics))
        spans.sort(key=lambda span: span[0], reverse=True)
        for start, end, tactics in spans:
            text = text[:start] + self._hole_text(text, scan, start, tactics) + text[end:]
        return text

    @staticmethod
    def _hole_text(text: str, masked: str, start: int, tactics: Sequence[str]) -> str:
        line_start = text.rfind("\n", 0, start) + 1
        lines = [line for tactic in tactics for line in clean_tactic(tactic).splitlines()]
        if _in_term_position(masked, start):
            indent = " " * (len(text[line_start:start]) - len(text[line_start:start].lstrip())) + _INDENT
            return "by\n" + "\n".join(indent + line if line.strip() else "" for line in lines)
        column = " " * (start - line_start)
        return lines[0] + "".join("\n" + (column + line if line.strip() else "") for line in lines[1:])


LEAN = LeanSyntax()
"""The Lean 4 syntax every Lean backend uses."""

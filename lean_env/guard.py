"""Text-level guard: what must never reach Lean from a model's proof or a user's statement.

Which layer stops what (each check returns a reason a person can read, or None):
1. Size limits (`size_problem`, first in every check): a proof, tactic, statement or header over its
   limit (`MAX_*_BYTES`, or `lean.policy` in the settings) is refused before anything reads it, so a
   10 MB submission costs microseconds. `check_text_async` moves large checks off the event loop.
2. The header policy (`lean_env.source_policy.check_header`): a header may only `import` allowed
   modules, `open` namespaces and `set_option` allowed options. It stops axioms, `macro_rules` that
   rewrite `#print axioms`, `set_option warn.sorry false`, `#eval` at start-up and `#exit` in headers.
3. This guard, on proofs, tactics and statements: `sorry`/`admit`/`stop`, `native_decide` and every
   other way to trust the compiler (`decide +native`, a positional `(config := ⟨...⟩)`, `bv_decide`,
   `ofReduceBool`, `implemented_by`, `extern`), `unsafe` code, elaboration-time code execution
   (`#eval`, `run_cmd`, `run_tac`, `by_elab`, `eval%`, `plausible`, `include_str`, interpolated
   strings, Aesop `tactic` rules and non-literal config terms), commands (`#exit`, `#print`, ...),
   new declarations and everything that changes the environment or the syntax (`theorem`, `axiom`,
   `def`, `instance`, `macro`, `notation`, `attribute`, `@[...]`, ...), scope commands (`end`,
   `namespace`, `section`, `import`, `open` without `in`, `open Lean ... in`, forbidden names inside
   `open ... renaming/hiding ... in`), `set_option` other than the resource limits in
   `ALLOWED_OPTIONS` in the form `set_option NAME VALUE in`, and brackets nested past `MAX_NESTING`.
   A statement (`check_statement_text`) is exactly one `theorem`/`lemma` ending in `:= by` or `:=`.
4. The judge (`lean_env.verification.judge`), on what Lean printed about the whole re-checked file:
   errors, `sorry` warnings, a changed statement, axioms reached through the environment (imported
   `sorry`'d or `native_decide` lemmas, instances built from axioms), and forged `#print axioms`
   answers (a second answer, printed by `trace` or a message, can only be forged).
What only Lean's cooperation could hide (a header that rewrites `#print axioms` prints one forged
answer, which the judge cannot tell from a real one) is stopped at layer 2, before Lean starts.

The guard reads the text the way Lean's scanner does: `--` line comments, nested `/- ... -/` block
comments, string and character literals, `«guillemet»` identifiers and Lean's own identifier
characters. So a forbidden word inside a comment or a string literal is harmless (`-- no sorry
here` and `"sorry"` are fine), while a forbidden word Lean would read as code is caught however it
is dressed up: guillemets (`«sorry»`), dotted paths (`_root_.Lean.ofReduceBool`), look-alike letters
(`ѕоrry` with Cyrillic letters, fullwidth `ｓｏｒｒｙ`), look-alike punctuation (`＃eval`, `﹟exit`,
`＠[simp]`), or a comment that Lean closes at a different place than a naive reader would.
Characters that change how text looks without changing what Lean reads (zero-width characters,
bidirectional controls, unusual spaces and line separators) are refused anywhere, comments included.
"""

from __future__ import annotations

import asyncio
import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from lean_env.lean_syntax import BRACKETS, block_comment_end

ALLOWED_OPTIONS: frozenset[str] = frozenset(
    {
        "maxHeartbeats",
        "maxRecDepth",
        "synthInstance.maxHeartbeats",
        "synthInstance.maxSize",
        "maxSteps",
    }
)
"""Options a proof may set, and only as `set_option NAME VALUE in <tactic or term>`: resource limits."""

MAX_PROOF_BYTES = 131_072
"""Default limit on a proof's (and a tactic's) UTF-8 size. A search proof is at most ~100 tactics of a
few hundred tokens each; the longest human miniF2F-style proofs are a few KB. Operators change it
with `lean.policy.max_proof_bytes`."""
MAX_STATEMENT_BYTES = 16_384
"""Default limit on a statement's UTF-8 size: 24x the longest miniF2F statement (679 bytes)."""
MAX_HEADER_BYTES = 8_192
"""Default limit on a header's UTF-8 size: 83x the longest miniF2F header (98 bytes)."""
MAX_NESTING = 256
"""Deepest bracket nesting accepted; miniF2F statements nest at most 9 deep, and deep nesting only
serves to exhaust Lean's parser stack."""
ASYNC_THRESHOLD_CHARS = 4_096
"""Above this many characters `check_text_async` runs the guard in a worker thread (about 10 ms of work;
a 128 KiB proof takes about 0.4 s)."""

# Identifiers (or any component of a dotted name) that must never appear in code, with the reason.
_FORBIDDEN_IDENTIFIERS: dict[str, str] = {
    "sorry": "uses `sorry`",
    "admit": "uses `admit` (an alias of `sorry`)",
    "sorryAx": "uses `sorryAx`, the axiom behind `sorry`",
    "native_decide": "uses `native_decide`, which trusts the compiler (axiom `Lean.ofReduceBool`)",
    "ofReduceBool": "uses `Lean.ofReduceBool`, which trusts the compiler",
    "ofReduceNat": "uses `Lean.ofReduceNat`, which trusts the compiler",
    "reduceBool": "uses `Lean.reduceBool`, which trusts the compiler",
    "reduceNat": "uses `Lean.reduceNat`, which trusts the compiler",
    "trustCompiler": "uses `Lean.trustCompiler`, which trusts the compiler",
    "implemented_by": "uses `implemented_by`, which swaps in unchecked code",
    "extern": "uses `extern`, which swaps in unchecked code",
    "unsafe": "uses `unsafe` code",
    "unsafeCast": "uses `unsafeCast`",
    "unsafeIO": "uses `unsafeIO`",
    "unsafeEIO": "uses `unsafeEIO`",
    "unsafeBaseIO": "uses `unsafeBaseIO`",
    "ptrAddrUnsafe": "uses `ptrAddrUnsafe`",
    "lcProof": "uses the compiler-only `lcProof`",
    "admitGoal": "uses `admitGoal`, which closes goals with `sorry`",
    "mkSorry": "builds `sorry` terms",
    "debug": "touches `debug.*` options (e.g. `debug.skipKernelTC` skips the kernel)",
    "bv_decide": "uses `bv_decide`, which trusts the compiler (axiom `Lean.ofReduceBool`)",
    "bv_check": "uses `bv_check`, which reads a proof certificate from a file and trusts the compiler",
    "include_str": "uses `include_str`, which reads a file while elaborating",
    "plausible": "uses `plausible`, which runs compiled code while elaborating",
    "slim_check": "uses `slim_check`, which runs compiled code while elaborating",
}

# `NAME%` term elaborators that evaluate code while elaborating.
_EVALUATING_ELABORATORS: dict[str, str] = {
    "eval": "uses `eval%`, which runs compiled code while elaborating",
}

# Non-ASCII characters that a reader takes for the `#` of a command or the `@` of an attribute.
_LOOKALIKE_PUNCTUATION = frozenset("♯⋕⌗＃﹟＠﹫［﹇")

# Names of config arguments whose value Lean evaluates (`declare_config_elab`, Aesop's options):
# only a structure instance of literals is accepted there.
_CONFIG_NAMES = frozenset({"config", "cfg", "options", "simp_config"})
_LITERAL_WORDS = frozenset({"true", "false"})
# Aesop clauses: what may follow `aesop (add|erase ...)`; `tactic` rules run arbitrary code.
_AESOP_CLAUSES = frozenset({"add", "erase", "rule_sets", "config", "options", "simp_config"})
_AESOP_RULE_WORDS = frozenset(
    {"safe", "norm", "apply", "simp", "unfold", "forward", "destruct", "cases", "cases_or", "constructors"}
)

# Names of API namespaces that only metaprograms use; a proof has no business naming them.
_FORBIDDEN_PREFIXES: tuple[str, ...] = (
    "Lean.Elab",
    "Lean.Meta",
    "Lean.Environment",
    "Lean.Kernel",
    "Lean.Compiler",
    "Lean.addDecl",
    "Lean.Parser",
    "Lean.Syntax",
)

_DECLARATIONS = frozenset(
    {
        "theorem",
        "lemma",
        "def",
        "abbrev",
        "instance",
        "axiom",
        "axioms",
        "opaque",
        "constant",
        "structure",
        "inductive",
        "coinductive",
        "class",
        "example",
        "mutual",
        "alias",
        "proof_wanted",
        "irreducible_def",
        "recall",
        "simproc",
        "dsimproc",
        "simproc_decl",
        "dsimproc_decl",
        "initialize",
        "builtin_initialize",
        "deriving",
        "where",
        "noncomputable",
        "partial",
        "protected",
        "nonrec",
    }
)
_SYNTAX_COMMANDS = frozenset(
    {
        "macro",
        "macro_rules",
        "syntax",
        "elab",
        "elab_rules",
        "notation",
        "notation3",
        "infix",
        "infixl",
        "infixr",
        "prefix",
        "postfix",
        "declare_syntax_cat",
        "run_cmd",
        "run_tac",
        "run_elab",
        "run_meta",
        "by_elab",
        "attribute",
        "local",
        "scoped",
        "export",
        "register_option",
        "register_builtin_option",
        "register_simp_attr",
        "register_label_attr",
        "add_decl_doc",
        "unseal",
        "seal",
        "compile_inductive",
        "library_note",
        "assert_not_exists",
        "initialize_simps_projections",
        "stop",
        "native",
    }
)
_SCOPE_COMMANDS = frozenset(
    {"end", "namespace", "section", "noncomputable", "import", "prelude", "universe", "variable", "omit", "include"}
)

_COMMAND_REASONS: dict[str, str] = {
    **{word: f"declares something new (`{word}`)" for word in _DECLARATIONS},
    **{word: f"changes the environment or the syntax (`{word}`)" for word in _SYNTAX_COMMANDS},
    **{
        word: f"changes the scope (`{word}`), which would end the proof and start a new command"
        for word in _SCOPE_COMMANDS
    },
    "stop": "uses `stop`, which closes every remaining goal with `sorry`",
    "native": "uses `decide +native`, which trusts the compiler (axiom `Lean.ofReduceBool`)",
    "where": "adds auxiliary declarations (`where`)",
    "private": "declares something private (`private`)",
    "set_option": "sets an option (`set_option`)",
    "open": "opens a namespace for the rest of the file (`open` without `in`)",
}

COMMAND_WORDS: frozenset[str] = frozenset(_COMMAND_REASONS)
"""Keywords that start or modify a command (`theorem`, `axiom`, `macro`, `open`, ...): a proof may hold none."""

# Commands spelled with `#`. Lean's scanner takes the longest token, so `#evalfoo` is `#eval foo`:
# a word is a command when one of these is a prefix of it. Other `#x` (Mathlib's `#s` for a
# finset's cardinality) are notation.
_HASH_COMMANDS: tuple[str, ...] = (
    "#adaptation_note",
    "#check",
    "#compile",
    "#conv",
    "#count_heartbeats",
    "#eval",
    "#exit",
    "#explode",
    "#find",
    "#guard",
    "#help",
    "#html",
    "#import",
    "#instances",
    "#kernel",
    "#leansearch",
    "#lint",
    "#long_names",
    "#loogle",
    "#min_imports",
    "#minimize_imports",
    "#moogle",
    "#norm_num",
    "#parse",
    "#print",
    "#push_neg",
    "#redundant_imports",
    "#reduce",
    "#sample",
    "#show",
    "#simp",
    "#synth",
    "#test",
    "#time",
    "#trans_imports",
    "#unfold",
    "#version",
    "#where",
    "#whnf",
    "#widget",
)

# The bracket set of `lean_env.lean_syntax`, so the guard and the parser agree on where `:=` ends a signature.
_OPENING = BRACKETS
_CLOSING = frozenset(_OPENING.values())

# Look-alike letters (Cyrillic, Greek, Latin extensions) mapped to the ASCII letter they imitate.
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "һ": "h", "ӏ": "l", "ɡ": "g", "ɑ": "a", "ı": "i", "ȷ": "j", "ο": "o", "α": "a", "ν": "v",
        "ι": "i", "κ": "k", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ε": "e", "ꜱ": "s",
        "ʀ": "r", "ʏ": "y", "ᴅ": "d", "ᴇ": "e", "ɪ": "i", "ɴ": "n", "ᴛ": "t", "ᴀ": "a", "ᴏ": "o",
    }
)  # fmt: skip

_CHAR_LITERAL = re.compile(r"'(?:\\(?:[\\\"'nrt0]|x[0-9a-fA-F]{2}|u\{?[0-9a-fA-F]{1,6}\}?)|[^\\'\n])'")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[^\W\d][\w'!?₀-₉ₐ-ₜᵢ-ᵪⱼ]*|«[^»]*»")


class GuardViolation(ValueError):
    """The text cannot be read safely (an unterminated comment, a hidden character, ...)."""


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme of Lean text as the guard sees it.

    `kind` is one of `ident`, `hash` (a `#word`), `number`, `string`, `char`, `symbol`. For an
    identifier `name` is its dotted name with guillemets removed; otherwise it is the raw text.
    """

    kind: str
    text: str
    name: str
    start: int
    line: int


def _is_letter_like(ch: str) -> bool:
    code = ord(ch)
    return (
        (0x3B1 <= code <= 0x3C9 and code != 0x3BB)
        or (0x391 <= code <= 0x3A9 and code not in (0x3A0, 0x3A3))
        or 0x3CA <= code <= 0x3FB
        or 0x1F00 <= code <= 0x1FFE
        or 0x2100 <= code <= 0x214F
        or 0x1D49C <= code <= 0x1D59F
    )


def _is_subscript(ch: str) -> bool:
    code = ord(ch)
    return 0x2080 <= code <= 0x2089 or 0x2090 <= code <= 0x209C or 0x1D62 <= code <= 0x1D6A or code == 0x2C7C


def _is_id_first(ch: str) -> bool:
    """Lean's `isIdFirst`: ASCII letters, `_`, and its letter-like ranges (Greek but λ, Π, Σ, ℝ, ...)."""
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ch == "_" or _is_letter_like(ch)


def _is_id_rest(ch: str) -> bool:
    """Lean's `isIdRest`: the first characters plus digits, `'`, `!`, `?` and subscripts."""
    return _is_id_first(ch) or ("0" <= ch <= "9") or ch in "'!?" or _is_subscript(ch)


_SUSPECT_CHARACTER = re.compile(r"[^\t\n\r\x20-\x7e]")
"""Characters worth a closer look: ASCII controls and anything non-ASCII (the text is mostly ASCII)."""


def _check_characters(text: str) -> None:
    for match in _SUSPECT_CHARACTER.finditer(text):
        ch = match.group()
        index = match.start()
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or category == "Zs":
            line = text.count("\n", 0, index) + 1
            name = unicodedata.name(ch, "unnamed character")
            raise GuardViolation(f"contains the invisible or control character U+{ord(ch):04X} ({name}) on line {line}")


def _skip_block_comment(text: str, start: int) -> int:
    """Index just past the block comment opening at `start`; Lean's block comments nest."""
    end = block_comment_end(text, start)
    if end >= 0:
        return end
    line = text.count("\n", 0, start) + 1
    raise GuardViolation(f"has a block comment opened on line {line} that is never closed")


def _string_end(text: str, start: int) -> int:
    index = start + 1
    while index < len(text):
        ch = text[index]
        if ch == "\\":
            index += 2
            continue
        if ch == '"':
            return index + 1
        index += 1
    line = text.count("\n", 0, start) + 1
    raise GuardViolation(f"has a string literal opened on line {line} that is never closed")


def _raw_string_end(text: str, start: int) -> int | None:
    """End of a raw string `r"..."` / `r#"..."#` starting at `start`, or None if there is none there."""
    hashes = 0
    index = start + 1
    while index < len(text) and text[index] == "#":
        hashes += 1
        index += 1
    if index >= len(text) or text[index] != '"':
        return None
    closing = '"' + "#" * hashes
    end = text.find(closing, index + 1)
    if end < 0:
        line = text.count("\n", 0, start) + 1
        raise GuardViolation(f"has a raw string literal opened on line {line} that is never closed")
    return end + len(closing)


def _identifier_end(text: str, start: int) -> tuple[int, str]:
    """End and normalised dotted name of the identifier starting at `start`."""
    parts: list[str] = []
    index = start
    length = len(text)
    while True:
        if index < length and text[index] == "«":
            close = text.find("»", index + 1)
            if close < 0:
                line = text.count("\n", 0, index) + 1
                raise GuardViolation(f"has a `«` on line {line} that is never closed")
            parts.append(text[index + 1 : close])
            index = close + 1
        else:
            begin = index
            index += 1
            while index < length and _is_id_rest(text[index]):
                index += 1
            parts.append(text[begin:index])
        if index + 1 < length and text[index] == "." and (_is_id_first(text[index + 1]) or text[index + 1] == "«"):
            index += 1
            continue
        return index, ".".join(parts)


def _trivia_end(text: str, index: int, line: int) -> int:
    """Index past the whitespace or comment at `index` (`index` itself when there is none).

    Raises `GuardViolation` for a stray `-/`, which Lean would not read as the end of a comment.
    """
    if text[index] in " \t\r\n":
        return index + 1
    if text.startswith("--", index):
        newline = text.find("\n", index)
        return len(text) if newline < 0 else newline
    if text.startswith("/-", index):
        return _skip_block_comment(text, index)
    if text.startswith("-/", index):
        raise GuardViolation(f"has a comment closer `-/` on line {line} without an opening `/-`")
    return index


def _literal_at(text: str, index: int) -> tuple[str, int] | None:
    """`(kind, end)` of the string, raw string or character literal at `index`, or None."""
    ch = text[index]
    if ch == '"':
        return "string", _string_end(text, index)
    if ch == "r" and index + 1 < len(text) and text[index + 1] in '#"':
        raw_end = _raw_string_end(text, index)
        if raw_end is not None:
            return "string", raw_end
    if ch == "'":
        match = _CHAR_LITERAL.match(text, index)
        if match is not None:
            return "char", match.end()
    return None


def _word_at(text: str, index: int) -> tuple[str, int, str | None] | None:
    """`(kind, end, name)` of the identifier, number or `#word` at `index`, or None."""
    ch = text[index]
    if _is_id_first(ch) or ch == "«":
        end, name = _identifier_end(text, index)
        return "ident", end, name
    if ch.isdigit():
        number = _NUMBER.match(text, index)
        end = number.end() if number is not None and number.end() > index else index + 1
        return "number", end, None
    if ch == "#" and index + 1 < len(text) and ("a" <= text[index + 1].lower() <= "z"):
        end = index + 2
        while end < len(text) and _is_id_rest(text[end]):
            end += 1
        return "hash", end, None
    return None


def _symbol_end(text: str, index: int) -> int:
    for symbol in _MULTI_SYMBOLS:
        if text.startswith(symbol, index):
            return index + len(symbol)
    return index + 1


_MULTI_SYMBOLS = ("@[", ":=", "<;>")


def tokenize(text: str, *, check_characters: bool = True) -> list[Token]:
    """Lean text as tokens, comments dropped. Raises `GuardViolation` for text Lean and a reader
    could see differently: hidden characters (unless `check_characters` is false, for reading
    trusted source files), unterminated comments or literals, a stray `-/`."""
    if check_characters:
        _check_characters(text)
    tokens: list[Token] = []
    index = 0
    length = len(text)
    line = 1
    line_start = 0
    while index < length:
        if index > line_start:
            line += text.count("\n", line_start, index)
            line_start = index
        after_trivia = _trivia_end(text, index, line)
        if after_trivia != index:
            index = after_trivia
            continue
        name: str | None = None
        literal = _literal_at(text, index)
        if literal is not None:
            kind, end = literal
        else:
            word = _word_at(text, index)
            if word is not None:
                kind, end, name = word
            else:
                kind, end = "symbol", _symbol_end(text, index)
        raw = text[index:end]
        tokens.append(Token(kind, raw, raw if name is None else name, index, line))
        index = end
    return tokens


def _lookalike(word: str) -> str | None:
    """The forbidden word `word` imitates with look-alike or compatibility characters, if any."""
    skeleton = unicodedata.normalize("NFKC", word).translate(_CONFUSABLES).replace("«", "").replace("»", "")
    for part in skeleton.split("."):
        if part in _FORBIDDEN_IDENTIFIERS or part in _COMMAND_REASONS:
            return part
    return None


def _code_words(text: str, tokens: list[Token]) -> list[tuple[str, Token]]:
    """Every word-like run in the code, found with Unicode's (wider) idea of a letter.

    String and character literals are data: Lean never reads their contents as code (an
    interpolated string, whose holes are code, is refused on its own), so they are left out.
    """
    words: list[tuple[str, Token]] = []
    for token in tokens:
        if token.kind in ("ident", "symbol"):
            words.extend((match.group(0), token) for match in _WORD.finditer(token.text))
    return words


def _merge_adjacent(text: str, tokens: list[Token]) -> list[tuple[str, Token]]:
    """Runs of letters that Lean splits into several tokens but a reader sees as one word (`ѕоrry`)."""
    merged: list[tuple[str, Token]] = []
    run: list[Token] = []

    def flush() -> None:
        if len(run) > 1:
            word = text[run[0].start : run[-1].start + len(run[-1].text)]
            merged.append((word, run[0]))
        run.clear()

    for token in tokens:
        letters = token.kind == "ident" or (token.kind == "symbol" and token.text.isalpha())
        if letters and run and run[-1].start + len(run[-1].text) == token.start:
            run.append(token)
        elif letters:
            flush()
            run.append(token)
        else:
            flush()
    flush()
    return merged


def _forbidden_name(name: str) -> str | None:
    for part in name.split("."):
        if part in _FORBIDDEN_IDENTIFIERS:
            return part
    for prefix in _FORBIDDEN_PREFIXES:
        if name == prefix or name.startswith(prefix + ".") or name.startswith("_root_." + prefix):
            return prefix
    return None


def _hash_command(word: str) -> str | None:
    for command in _HASH_COMMANDS:
        if word.startswith(command):
            return command
    return None


def _check_set_option(tokens: list[Token], position: int) -> tuple[str | None, int]:
    """Validate `set_option NAME VALUE in` at `position`; a reason or None, and the next index."""
    if position + 3 >= len(tokens):
        return "uses `set_option` without `in`: only `set_option NAME VALUE in <tactic>` is allowed", position + 1
    option, value, keyword = tokens[position + 1], tokens[position + 2], tokens[position + 3]
    if option.kind != "ident" or option.name not in ALLOWED_OPTIONS:
        allowed = ", ".join(sorted(ALLOWED_OPTIONS))
        return f"sets the option `{option.text}`; a proof may only set {allowed}", position + 1
    if not (value.kind == "number" or value.text in ("true", "false")):
        return f"sets `{option.name}` to `{value.text}`, which is not a number or a Boolean", position + 1
    if not (keyword.kind == "ident" and keyword.name == "in"):
        return "uses `set_option` without `in`: only `set_option NAME VALUE in <tactic>` is allowed", position + 1
    return None, position + 4


OPEN_PARTS = frozenset({"(", ")", "hiding", "renaming", "→", "->", ",", "scoped"})
"""Tokens an `open` clause may hold besides namespace and declaration names."""


def open_name_problem(name: str) -> str | None:
    """Why a name in an `open` clause (a namespace, or a name it hides or renames) is refused, or None.

    Forbidden names are refused as anywhere else; so is the `Lean` namespace itself, since opening it
    makes `Elab.…`/`Meta.…` reach the metaprogramming API past the prefix check.
    """
    found = _forbidden_name(name)
    if found is not None:
        return _reason(found)
    plain = name.removeprefix("_root_.")
    if plain == "Lean" or plain.startswith("Lean."):
        return f"opens `{name}`, the metaprogramming namespace, which a proof has no use for"
    return None


def scan_open(tokens: list[Token], position: int, stop_words: frozenset[str]) -> tuple[str | None, int]:
    """Read the `open` clause at `position` up to (not including) `in` or the first token outside it.

    Returns a reason when a name in it is refused (see `open_name_problem`), else None, and the index
    just past the clause. `stop_words` are identifiers that end the clause (`in`, other commands).
    """
    index = position + 1
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "ident" and token.name in stop_words and token.text not in OPEN_PARTS:
            break
        if token.kind == "ident" and token.text not in OPEN_PARTS:
            problem = open_name_problem(token.name)
            if problem is not None:
                return problem, index
        elif token.text not in OPEN_PARTS:
            break
        index += 1
    return None, index


def _check_open(tokens: list[Token], position: int) -> tuple[str | None, int]:
    """Validate `open A B (c) hiding d renaming e → f in` at `position`: scoped with `in`, every name checked."""
    problem, index = scan_open(tokens, position, COMMAND_WORDS | {"in"})
    if problem is not None:
        return problem, index
    if index < len(tokens) and tokens[index].kind == "ident" and tokens[index].name == "in" and index > position + 1:
        return None, index + 1
    return _reason("open"), position + 1


def _matching_close(tokens: list[Token], position: int) -> int:
    """Index of the bracket closing the one at `position` (len(tokens) when it is never closed)."""
    depth = 0
    for index in range(position, len(tokens)):
        text = tokens[index].text
        if text in _OPENING:
            depth += 1
        elif text in _CLOSING:
            depth -= 1
            if depth == 0:
                return index
    return len(tokens)


def _literal_structure_problem(value: list[Token]) -> str | None:
    """Why a config value is not `{ field := literal, ... }` (literals: numbers, strings, `true`,
    `false`, `.name`, nested literal structures), or None when it is."""
    if not value or value[0].text != "{" or value[-1].text != "}":
        shown = " ".join(token.text for token in value[:6]) or "nothing"
        return f"`{shown}`, which is not a structure instance `{{ field := literal, ... }}`"
    index = 1
    while index < len(value) - 1:
        name = value[index]
        if name.text == ",":
            index += 1
            continue
        if name.kind != "ident" or index + 2 >= len(value) or value[index + 1].text != ":=":
            return f"`{name.text}` in a structure instance; only `field := literal` entries are allowed"
        index += 2
        item = value[index]
        if item.text == "{":
            close = _matching_close(value, index)
            inner = _literal_structure_problem(value[index : close + 1])
            if inner is not None:
                return inner
            index = close + 1
        elif item.kind in ("number", "string", "char") or (item.kind == "ident" and item.name in _LITERAL_WORDS):
            index += 1
        elif item.text == "." and index + 1 < len(value) and value[index + 1].kind == "ident":
            index += 2
        else:
            return f"`{name.name} := {item.text}`, a value that is not a literal"
    return None


def _check_config(tokens: list[Token], position: int) -> tuple[str | None, int]:
    """At `(NAME := ...)` with NAME a config argument: a reason unless the value is a literal structure."""
    close = _matching_close(tokens, position)
    name = tokens[position + 1].name
    problem = _literal_structure_problem(tokens[position + 3 : close])
    if problem is not None:
        return (
            f"sets `{name}` to {problem}: Lean evaluates config terms, and a positional `⟨...⟩` can switch "
            "on `native` without naming it",
            position,
        )
    # The field names are scanned like any other code (`{ native := true }` is refused there).
    return None, position + 1


def _check_aesop(tokens: list[Token], position: int) -> tuple[str | None, int]:
    """Validate the `(clause ...)` groups after `aesop` at `position`; a reason or None, and the next index."""
    index = position + 1
    while index + 1 < len(tokens) and tokens[index].text == "(":
        close = _matching_close(tokens, index)
        clause = tokens[index + 1]
        if clause.kind != "ident" or clause.name not in _AESOP_CLAUSES:
            return (
                f"uses the Aesop clause `({clause.text} ...)`; only `add`/`erase` of named lemmas, "
                "`rule_sets` and literal `config`/`options`/`simp_config` are allowed",
                index,
            )
        if clause.name in _CONFIG_NAMES:
            problem, _ = _check_config(tokens, index)
            if problem is not None:
                return problem, index
        else:
            for token in tokens[index + 2 : close]:
                allowed = (
                    token.text in (",", "%", "-", ":=", "[", "]", ".")
                    or token.kind == "number"
                    or (token.kind == "ident" and token.name not in ("tactic", "by", "fun", "do"))
                )
                if not allowed or (token.kind == "ident" and _forbidden_name(token.name) is not None):
                    return (
                        f"adds an Aesop rule with `{token.text}`; only named lemmas with the builders "
                        f"{', '.join(sorted(_AESOP_RULE_WORDS))} are allowed (a `tactic` rule runs arbitrary code)",
                        index,
                    )
        index = close + 1
    return None, position + 1


def _nesting_problem(tokens: list[Token]) -> str | None:
    depth = 0
    for token in tokens:
        if token.text in _OPENING:
            depth += 1
            if depth > MAX_NESTING:
                return f"nests brackets more than {MAX_NESTING} deep (line {token.line})"
        elif token.text in _CLOSING:
            depth = max(0, depth - 1)
    return None


def lookalike_problem(text: str, tokens: list[Token]) -> str | None:
    """Why the code in `tokens` imitates a forbidden word or `#`/`@` with look-alike characters, or None."""
    for word, _token in [*_code_words(text, tokens), *_merge_adjacent(text, tokens)]:
        target = _lookalike(word)
        if target is None:
            continue
        plain = word.replace("«", "").replace("»", "")
        if target not in plain.split(".") and plain != target:
            return f"contains `{word}`, which imitates `{target}` with look-alike characters"
    for token in tokens:
        if token.kind != "symbol" or token.text.isascii():
            continue
        folded = unicodedata.normalize("NFKC", token.text)
        if token.text in _LOOKALIKE_PUNCTUATION or (folded.isascii() and not folded.isalnum()):
            imitated = "#" if token.text in "♯⋕⌗" else folded
            return (
                f"contains `{token.text}` (U+{ord(token.text[0]):04X}) on line {token.line}, "
                f"which imitates `{imitated}` with a look-alike character"
            )
    return None


def _reason(word: str) -> str:
    return _COMMAND_REASONS.get(word) or _FORBIDDEN_IDENTIFIERS.get(word) or f"uses `{word}`"


def _is_config_argument(tokens: list[Token], index: int) -> bool:
    return (
        tokens[index].text == "("
        and index + 2 < len(tokens)
        and tokens[index + 1].kind == "ident"
        and tokens[index + 1].name in _CONFIG_NAMES
        and tokens[index + 2].text == ":="
    )


def _token_problem(
    tokens: list[Token], index: int, *, allow_declaration: bool, allow_sorry: bool = False
) -> tuple[str | None, int]:
    """The checks of the one token at `index`: a reason or None, and the index to continue from."""
    token = tokens[index]
    if token.kind == "hash":
        command = _hash_command(token.text)
        if command is not None:
            return f"runs the command `{command}`; commands are not allowed here", index
    elif token.kind == "string":
        if "{" in token.text and index > 0 and tokens[index - 1].text.endswith("!"):
            return "contains an interpolated string, which runs code", index
    elif token.text == "@[":
        return "adds attributes (`@[...]`), which can declare or change things", index
    elif _is_config_argument(tokens, index):
        return _check_config(tokens, index)
    elif token.kind == "ident":
        name = token.name
        found = _forbidden_name(name)
        if found is not None and not (allow_sorry and found == "sorry"):
            return _reason(found), index
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if (
            name in _EVALUATING_ELABORATORS
            and following is not None
            and following.text == "%"
            and following.start == token.start + len(token.text)
        ):
            return _EVALUATING_ELABORATORS[name], index
        if name == "set_option":
            return _check_set_option(tokens, index)
        if name == "open":
            return _check_open(tokens, index)
        if name.startswith("aesop"):
            return _check_aesop(tokens, index)
        if name == "private":
            return _reason("private"), index
        if name in ("theorem", "lemma") and allow_declaration:
            return None, index + 1
        if name in _COMMAND_REASONS:
            return _reason(name), index
    return None, index + 1


def _scan(text: str, *, allow_declaration: bool, allow_sorry: bool = False) -> tuple[str | None, list[Token]]:
    """Shared checks of code text: a reason, or None, and the tokens (for the statement checks)."""
    try:
        tokens = tokenize(text)
    except GuardViolation as violation:
        return str(violation), []
    problem = lookalike_problem(text, tokens) or _nesting_problem(tokens)
    if problem is not None:
        return problem, tokens
    index = 0
    while index < len(tokens):
        problem, index = _token_problem(tokens, index, allow_declaration=allow_declaration, allow_sorry=allow_sorry)
        if problem is not None:
            return problem, tokens
    return None, tokens


def size_problem(text: str, limit: int, what: str, setting: str) -> str | None:
    """Why `text` is too large to check (its UTF-8 size over `limit` bytes), or None.

    Cheap on any input: the character count bounds the byte count from both sides before encoding.
    `what` names the text (`the proof`), `setting` the option that raises the limit.
    """
    if len(text) <= limit // 4:
        return None
    size = len(text) if len(text) > limit else len(text.encode("utf-8"))
    if size <= limit:
        return None
    return f"{what} is {size:,} bytes long; the limit is {limit:,} bytes (setting `{setting}`)"


def check_proof_text(proof: str, *, max_bytes: int = MAX_PROOF_BYTES) -> str | None:
    """Why `proof` (a tactic block or term after `:=`) must not be sent to Lean, or None if it may.

    The size limit (`max_bytes` of UTF-8) is checked before anything else. The reason starts with
    "the proof ..." and names what was found.
    """
    too_large = size_problem(proof, max_bytes, "the proof", "lean.policy.max_proof_bytes")
    if too_large is not None:
        return too_large
    problem, _ = _scan(proof, allow_declaration=False)
    return None if problem is None else f"the proof {problem}"


def check_tactic_text(tactic: str, *, max_bytes: int = MAX_PROOF_BYTES) -> str | None:
    """Why one tactic (possibly several lines: a `calc`, a `·` block) must not be run, or None if it may.

    A tactic shares the proof's size limit (`max_bytes`), checked first.
    """
    too_large = size_problem(tactic, max_bytes, "the tactic", "lean.policy.max_proof_bytes")
    if too_large is not None:
        return too_large
    problem, _ = _scan(tactic, allow_declaration=False)
    return None if problem is None else f"the tactic {problem}"


def check_sketch_text(text: str, *, max_bytes: int = MAX_PROOF_BYTES) -> str | None:
    """Why a text to `check` for holes (a sketch: theorems whose proofs may hold `sorry`) must not reach Lean.

    Everything `check_proof_text` refuses is refused here too, except the word `sorry` itself (a hole
    is the point of a sketch) and `theorem`/`lemma` declarations. `check` reports holes; it never
    gives a verdict, so a sketch's proofs are verified separately, where `sorry` is refused again.
    """
    too_large = size_problem(text, max_bytes, "the text", "lean.policy.max_proof_bytes")
    if too_large is not None:
        return too_large
    problem, _ = _scan(text, allow_declaration=True, allow_sorry=True)
    return None if problem is None else f"the text {problem}"


def check_statement_text(statement: str, *, max_bytes: int = MAX_STATEMENT_BYTES) -> str | None:
    """Why a user-submitted statement must not be accepted, or None.

    Accepted: at most `max_bytes` of UTF-8 (checked first), exactly one `theorem NAME ... : TYPE`
    (or `lemma`) ending in `:= by` or `:=`, with nothing after it, and none of what
    `check_proof_text` refuses anywhere in it.
    """
    too_large = size_problem(statement, max_bytes, "the statement", "lean.policy.max_statement_bytes")
    if too_large is not None:
        return too_large
    problem, tokens = _scan(statement, allow_declaration=True)
    if problem is not None:
        return f"the statement {problem}"
    if not tokens or tokens[0].kind != "ident" or tokens[0].name not in ("theorem", "lemma"):
        first = tokens[0].text if tokens else "nothing"
        return f"the statement must start with `theorem NAME` (or `lemma NAME`), not `{first}`"
    declarations = [t for t in tokens if t.kind == "ident" and t.name in ("theorem", "lemma")]
    if len(declarations) > 1:
        return "the statement declares more than one theorem"
    if len(tokens) < 2 or tokens[1].kind != "ident":
        return "the statement must name its theorem: `theorem NAME ... := by`"
    depth = 0
    for index, token in enumerate(tokens[2:], start=2):
        if token.text in _OPENING:
            depth += 1
        elif token.text in _CLOSING:
            depth = max(0, depth - 1)
        elif token.text == ":=" and depth == 0:
            rest = tokens[index + 1 :]
            if not rest or (len(rest) == 1 and rest[0].kind == "ident" and rest[0].name == "by"):
                return None
            return "the statement has text after `:= by`; a statement carries no proof"
    return "the statement must end with `:= by` (or `:=`)"


async def check_text_async(check: Callable[..., str | None], text: str, **limits: int) -> str | None:
    """`check(text, **limits)` (one of the `check_*_text` functions) without blocking the event loop.

    Text over `ASYNC_THRESHOLD_CHARS` is checked in a worker thread (`asyncio.to_thread`); shorter
    text, and text over its size limit (refused at once), is checked inline, where a thread would cost
    more than the check.
    """
    if len(text) <= ASYNC_THRESHOLD_CHARS or len(text) > limits.get("max_bytes", MAX_PROOF_BYTES):
        return check(text, **limits)
    return await asyncio.to_thread(functools.partial(check, text, **limits))


async def check_proof_text_async(proof: str, *, max_bytes: int = MAX_PROOF_BYTES) -> str | None:
    """`check_proof_text` for async callers: large proofs are checked off the event loop."""
    return await check_text_async(check_proof_text, proof, max_bytes=max_bytes)


async def check_tactic_text_async(tactic: str, *, max_bytes: int = MAX_PROOF_BYTES) -> str | None:
    """`check_tactic_text` for async callers: large tactics are checked off the event loop."""
    return await check_text_async(check_tactic_text, tactic, max_bytes=max_bytes)

"""Text-level guard: what must never reach Lean from a model's proof or a user's statement.

It runs before Lean sees anything, as the first line of defence; the whole-file re-check and
`#print axioms` (`lean_env.verification`) are the second. Every check returns a reason a person
can read, or None when the text may go to Lean.

The guard reads the text the way Lean's scanner does: `--` line comments, nested `/- ... -/` block
comments, string and character literals, `«guillemet»` identifiers and Lean's own identifier
characters. So a forbidden word inside a comment is harmless (`-- no sorry here` is fine), while a
forbidden word Lean would read as code is caught however it is dressed up: guillemets
(`«sorry»`), dotted paths (`_root_.Lean.ofReduceBool`), look-alike letters (`ѕоrry` with Cyrillic
letters), or a comment that Lean closes at a different place than a naive reader would. Characters
that change how text looks without changing what Lean reads (zero-width characters, bidirectional
controls, unusual spaces and line separators) are refused anywhere, comments included.

What a proof may not contain: `sorry`/`admit`/`stop`, `native_decide` and the other ways to trust
the compiler instead of the kernel, commands (`#eval`, `#exit`, `#print`, `run_cmd`, ...), new
declarations and everything that changes the environment or the syntax (`theorem`, `axiom`, `def`,
`instance`, `macro`, `syntax`, `elab`, `notation`, `attribute`, `@[...]`, ...), scope commands
(`end`, `namespace`, `section`, `import`, `open` without `in`), and `set_option` other than the
resource limits in `ALLOWED_OPTIONS` in the tactic form `set_option NAME VALUE in`.
A statement (`check_statement_text`) is exactly one `theorem`/`lemma` ending in `:= by` or `:=`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from lean_env.lean_syntax import BRACKETS

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
}

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


def _check_characters(text: str) -> None:
    for index, ch in enumerate(text):
        if ch in "\n\t\r ":
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or category == "Zs":
            line = text.count("\n", 0, index) + 1
            name = unicodedata.name(ch, "unnamed character")
            raise GuardViolation(f"contains the invisible or control character U+{ord(ch):04X} ({name}) on line {line}")


def _skip_block_comment(text: str, start: int) -> int:
    """Index just past the block comment opening at `start`; Lean's block comments nest."""
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

    def add(kind: str, end: int, name: str | None = None) -> None:
        raw = text[index:end]
        tokens.append(Token(kind, raw, raw if name is None else name, index, line))

    while index < length:
        if index > line_start:
            line += text.count("\n", line_start, index)
            line_start = index
        ch = text[index]
        if ch in " \t\r\n":
            index += 1
            continue
        if text.startswith("--", index):
            newline = text.find("\n", index)
            index = length if newline < 0 else newline
            continue
        if text.startswith("/-", index):
            index = _skip_block_comment(text, index)
            continue
        if text.startswith("-/", index):
            raise GuardViolation(f"has a comment closer `-/` on line {line} without an opening `/-`")
        if ch == '"':
            end = _string_end(text, index)
            add("string", end)
            index = end
            continue
        if ch == "r" and index + 1 < length and text[index + 1] in '#"':
            raw_end = _raw_string_end(text, index)
            if raw_end is not None:
                add("string", raw_end)
                index = raw_end
                continue
        if ch == "'":
            match = _CHAR_LITERAL.match(text, index)
            if match is not None:
                add("char", match.end())
                index = match.end()
                continue
        if _is_id_first(ch) or ch == "«":
            end, name = _identifier_end(text, index)
            add("ident", end, name)
            index = end
            continue
        if ch.isdigit():
            number = _NUMBER.match(text, index)
            end = number.end() if number is not None and number.end() > index else index + 1
            add("number", end)
            index = end
            continue
        if ch == "#" and index + 1 < length and ("a" <= text[index + 1].lower() <= "z"):
            end = index + 2
            while end < length and _is_id_rest(text[end]):
                end += 1
            add("hash", end)
            index = end
            continue
        for symbol in ("@[", ":=", "<;>"):
            if text.startswith(symbol, index):
                add("symbol", index + len(symbol))
                index += len(symbol)
                break
        else:
            add("symbol", index + 1)
            index += 1
    return tokens


def _lookalike(word: str) -> str | None:
    """The forbidden word `word` imitates with look-alike or compatibility characters, if any."""
    skeleton = unicodedata.normalize("NFKC", word).translate(_CONFUSABLES).replace("«", "").replace("»", "")
    for part in skeleton.split("."):
        if part in _FORBIDDEN_IDENTIFIERS or part in _COMMAND_REASONS:
            return part
    return None


def _code_words(text: str, tokens: list[Token]) -> list[tuple[str, Token]]:
    """Every word-like run in the code and the strings, found with Unicode's (wider) idea of a letter."""
    words: list[tuple[str, Token]] = []
    for token in tokens:
        if token.kind in ("ident", "string", "symbol", "char"):
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


_OPEN_PARTS = frozenset({"(", ")", "hiding", "renaming", "→", "private", "scoped"})


def _check_open(tokens: list[Token], position: int) -> tuple[str | None, int]:
    """Validate `open A B (c) hiding d in` at `position`: an `open` must be scoped with `in`."""
    index = position + 1
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "ident" and token.name == "in":
            return None, index + 1
        if token.kind == "ident" or token.text in _OPEN_PARTS:
            index += 1
            continue
        break
    return _reason("open"), position + 1


def _reason(word: str) -> str:
    return _COMMAND_REASONS.get(word) or _FORBIDDEN_IDENTIFIERS.get(word) or f"uses `{word}`"


def _scan(text: str, *, allow_declaration: bool) -> tuple[str | None, list[Token]]:
    """Shared checks of code text: a reason, or None, and the tokens (for the statement checks)."""
    try:
        tokens = tokenize(text)
    except GuardViolation as violation:
        return str(violation), []
    for word, _token in [*_code_words(text, tokens), *_merge_adjacent(text, tokens)]:
        target = _lookalike(word)
        if target is None:
            continue
        plain = word.replace("«", "").replace("»", "")
        if target not in plain.split(".") and plain != target:
            return f"contains `{word}`, which imitates `{target}` with look-alike characters", tokens
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "hash":
            command = _hash_command(token.text)
            if command is not None:
                return f"runs the command `{command}`; commands are not allowed here", tokens
        elif token.kind == "string":
            if "{" in token.text and index > 0 and tokens[index - 1].text.endswith("!"):
                return "contains an interpolated string, which runs code", tokens
            for word, _ in _code_words(token.text, [token]):
                found = _forbidden_name(word.replace("«", "").replace("»", ""))
                if found is not None:
                    return f"mentions `{found}` in a string literal", tokens
        elif token.text == "@[":
            return "adds attributes (`@[...]`), which can declare or change things", tokens
        elif token.kind == "ident":
            name = token.name
            found = _forbidden_name(name)
            if found is not None:
                return _reason(found), tokens
            if name == "set_option":
                problem, index = _check_set_option(tokens, index)
                if problem is not None:
                    return problem, tokens
                continue
            if name == "open":
                problem, index = _check_open(tokens, index)
                if problem is not None:
                    return problem, tokens
                continue
            if name == "private":
                return _reason("private"), tokens
            if name in ("theorem", "lemma") and allow_declaration:
                index += 1
                continue
            if name in _COMMAND_REASONS:
                return _reason(name), tokens
        index += 1
    return None, tokens


def check_proof_text(proof: str) -> str | None:
    """Why `proof` (a tactic block or term after `:=`) must not be sent to Lean, or None if it may.

    The reason starts with "the proof ..." and names what was found.
    """
    problem, _ = _scan(proof, allow_declaration=False)
    return None if problem is None else f"the proof {problem}"


def check_tactic_text(tactic: str) -> str | None:
    """Why one tactic (possibly several lines: a `calc`, a `·` block) must not be run, or None if it may."""
    problem, _ = _scan(tactic, allow_declaration=False)
    return None if problem is None else f"the tactic {problem}"


def check_statement_text(statement: str) -> str | None:
    """Why a user-submitted statement must not be accepted, or None.

    Accepted: exactly one `theorem NAME ... : TYPE` (or `lemma`) ending in `:= by` or `:=`, with
    nothing after it, and none of what `check_proof_text` refuses anywhere in it.
    """
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

"""Loading problems from JSONL files and miniF2F checkouts, filtering them, naming miniF2F categories.

A `Dataset` holds core `lean_env.types.Problem`s, so evaluation is generic over problems: miniF2F is
one dataset among any a user gives. Three sources are understood:
- `load_problems(path)`: any JSONL file, one record per line with at least `name` and
  `formal_statement`, and optionally `header`, `split`, `category`, `language` (`lean4`,
  `isabelle`), `informal_statement`, `informal_proof` and `source` (`owner/repo@commit:path`);
  other fields are ignored;
- `load_dataset(path)` on a JSONL file: the same records, but miniF2F's: `header` is required and
  `split` must be `valid` or `test` (`minif2f_lean4.jsonl`, `minif2f_isabelle.jsonl`);
- `load_dataset(path)` on a checkout of yangky11/miniF2F-lean4: `MiniF2F/Valid/<name>.lean` and
  `MiniF2F/Test/<name>.lean`, one theorem per file: header, `theorem <name> ... := by`, ` sorry`.

A record's language is its `language` field, else the loader's `language=` argument, else Lean 4.
Only Lean problems are checked for Lean's shape (a `theorem <name>` whose signature ends in
`:= by`, found by `lean_env.lean_syntax`) and, at load time, against the source policy
(`lean_env.source_policy`: statement and header sizes, a header of allowed `import`, `open` and
`set_option` lines only); other languages' statements are taken as written.
Malformed input raises `DatasetError` naming the file, the line (JSONL) and the field at fault.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lean_env.gitinfo import git_head, is_checkout_root
from lean_env.lean_syntax import declarations, mask, split_declaration
from lean_env.source_policy import DEFAULT_POLICY, SourcePolicy, check_header, check_sizes
from lean_env.types import Language, Problem

if TYPE_CHECKING:
    from lean_env.dojo import DojoLocation

SPLITS: tuple[str, ...] = ("valid", "test")
"""The miniF2F splits, in the order problems are listed."""

_SPLIT_DIRS = {"valid": "Valid", "test": "Test"}


class DatasetError(ValueError):
    """The dataset cannot be read or a filter is invalid; the message names the file, line and field."""


class Category(StrEnum):
    """A problem's family, derived from its name (miniF2F names encode their source competition)."""

    MATHD_ALGEBRA = "mathd_algebra"
    MATHD_NUMBERTHEORY = "mathd_numbertheory"
    AMC = "amc"
    AIME = "aime"
    IMO = "imo"
    INDUCTION = "induction"
    ALGEBRA = "algebra"
    """Other algebra: the hand-written `algebra_*` problems."""
    NUMBERTHEORY = "numbertheory"
    """Other number theory: the hand-written `numbertheory_*` problems."""
    OTHER = "other"
    """A name matching none of the known prefixes (only in datasets other than miniF2F)."""

    @property
    def label(self) -> str:
        """A human-readable name for tables and plots."""
        return _LABELS[self]


_LABELS = {
    Category.MATHD_ALGEBRA: "mathd algebra",
    Category.MATHD_NUMBERTHEORY: "mathd number theory",
    Category.AMC: "AMC",
    Category.AIME: "AIME",
    Category.IMO: "IMO",
    Category.INDUCTION: "induction",
    Category.ALGEBRA: "other algebra",
    Category.NUMBERTHEORY: "other number theory",
    Category.OTHER: "other",
}

# Order matters: `mathd_algebra_` must be tried before the generic `algebra_`.
_PREFIXES: tuple[tuple[str, Category], ...] = (
    ("mathd_algebra_", Category.MATHD_ALGEBRA),
    ("mathd_numbertheory_", Category.MATHD_NUMBERTHEORY),
    ("amc", Category.AMC),
    ("aime", Category.AIME),
    ("imo", Category.IMO),
    ("induction_", Category.INDUCTION),
    ("algebra_", Category.ALGEBRA),
    ("numbertheory_", Category.NUMBERTHEORY),
)


def category_of(name: str) -> Category:
    """The category of a miniF2F problem name: `amc12a_2019_p21` is AMC, `imosl_2007_algebra_p6` is IMO."""
    lowered = name.lower()
    for prefix, category in _PREFIXES:
        if lowered.startswith(prefix):
            return category
    return Category.OTHER


@dataclass(frozen=True, slots=True)
class Dataset:
    """A selection of problems and the identity of the data it was read from.

    `sha256` hashes the whole source (the JSONL file's bytes, or every theorem file of the checkout with
    its relative path), so two runs can tell whether they read the same data; `selection_sha256` hashes
    only the selected problems' names, headers and statements.
    """

    problems: tuple[Problem, ...]
    source: str
    kind: Literal["jsonl", "checkout"]
    sha256: str

    @property
    def names(self) -> list[str]:
        return [problem.name for problem in self.problems]

    @property
    def selection_sha256(self) -> str:
        digest = hashlib.sha256()
        for problem in self.problems:
            for part in (problem.name, problem.header, problem.formal_statement):
                digest.update(part.encode("utf-8"))
                digest.update(b"\0")
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self.problems)

    def select(
        self,
        splits: Iterable[str] | None = None,
        pattern: str | None = None,
        categories: Iterable[str | Category] | None = None,
        limit: int | None = None,
    ) -> Dataset:
        """The problems passing every filter, in their original order.

        `splits`: split names (`valid`, `test`, or any split the records name; `all` means every
        one). `pattern`: shell-style globs on the name, comma-separated (`mathd_*,amc12a_*`).
        `categories`: category values (`mathd_algebra`, `amc`, ..., or any category the records
        name). `limit`: keep the first N after the other filters. Raises `DatasetError` for an
        unknown value.
        """
        problems: Sequence[Problem] = self.problems
        if splits is not None:
            wanted = _parse_splits(splits, {problem.split for problem in self.problems})
            problems = [problem for problem in problems if problem.split in wanted]
        if pattern:
            globs = [part.strip() for part in pattern.split(",") if part.strip()]
            problems = [problem for problem in problems if any(fnmatch.fnmatchcase(problem.name, g) for g in globs)]
        if categories is not None:
            chosen = _parse_categories(categories, {problem.category for problem in self.problems})
            problems = [problem for problem in problems if problem.category in chosen]
        if limit is not None:
            if limit < 1:
                raise DatasetError(f"limit: must be >= 1, got {limit}")
            problems = problems[:limit]
        return replace(self, problems=tuple(problems))


def _parse_splits(splits: Iterable[str], present: set[str]) -> set[str]:
    known = set(SPLITS) | {split for split in present if split}
    wanted: set[str] = set()
    for split in splits:
        value = split.strip().lower()
        if value == "all":
            wanted.update(known)
        elif value in known:
            wanted.add(value)
        else:
            choices = ", ".join([*SPLITS, *sorted(known - set(SPLITS)), "all"])
            raise DatasetError(f"split: unknown split {split!r}; choose from {choices}")
    return wanted


def _parse_categories(categories: Iterable[str | Category], present: set[str]) -> set[str]:
    known = {category.value for category in Category} | present
    chosen: set[str] = set()
    for category in categories:
        value = str(category.value if isinstance(category, Category) else category).strip().lower()
        if value not in known:
            choices = ", ".join([*(c.value for c in Category), *sorted(present - {c.value for c in Category})])
            raise DatasetError(f"category: unknown category {category!r}; choose from {choices}")
        chosen.add(value)
    return chosen


def load_dataset(
    path: Path,
    *,
    splits: Iterable[str] | None = None,
    pattern: str | None = None,
    categories: Iterable[str | Category] | None = None,
    limit: int | None = None,
    language: Language | str | None = None,
    policy: SourcePolicy = DEFAULT_POLICY,
) -> Dataset:
    """Read miniF2F from a checkout directory or a JSONL file, then apply the filters of `Dataset.select`.

    A JSONL file's records must name a miniF2F split (`valid` or `test`); `language` is the
    language of records without a `language` field (Lean 4 when None), so
    `load_dataset(minif2f_isabelle.jsonl, language="isabelle")` gives 488 Isabelle problems. A
    checkout is Lean 4. Problems come in split order (valid, then test) and, within a split, in file
    order (JSONL) or by name (checkout). Raises `DatasetError` when the path is missing, a record or
    file is malformed, a Lean problem breaks `policy` (its header or sizes; pass the settings'
    `lean.policy`), or a name appears twice.
    """
    path = Path(path)
    if path.is_dir():
        if language is not None and Language(language) is not Language.LEAN4:
            raise DatasetError(f"{path}: a miniF2F-lean4 checkout holds Lean 4 problems, not {language}")
        dataset = _load_checkout(path, policy)
    elif path.is_file():
        dataset = _load_jsonl(path, language=_language_argument(language), splits=SPLITS, policy=policy)
    else:
        raise DatasetError(
            f"{path}: no such file or directory; give a miniF2F-lean4 checkout (run `prover setup`) "
            "or a JSONL file with name, split, header and formal_statement"
        )
    return dataset.select(splits=splits, pattern=pattern, categories=categories, limit=limit)


def load_problems(
    path: Path,
    *,
    language: Language | str | None = None,
    splits: Iterable[str] | None = None,
    pattern: str | None = None,
    categories: Iterable[str | Category] | None = None,
    limit: int | None = None,
    policy: SourcePolicy = DEFAULT_POLICY,
) -> Dataset:
    """Read a user's JSONL file of problems (any names, any splits), then apply `Dataset.select`'s filters.

    Each record needs `name` and `formal_statement`; `header` defaults to empty, `split` to none,
    `category` to the miniF2F category the name implies (`other` for most names). Problems keep
    file order. Raises `DatasetError` naming the line and field of a malformed record, or of a Lean
    record whose header or sizes break `policy`.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; give a JSONL file with one problem (name, formal_statement) a line")
    dataset = _load_jsonl(path, language=_language_argument(language), splits=None, policy=policy)
    return dataset.select(splits=splits, pattern=pattern, categories=categories, limit=limit)


def _language_argument(language: Language | str | None) -> Language | None:
    if language is None:
        return None
    try:
        return Language(language)
    except ValueError:
        choices = ", ".join(value.value for value in Language)
        raise DatasetError(f"language: unknown language {language!r}; choose from {choices}") from None


class _JsonlRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    formal_statement: str = Field(min_length=1)
    header: str = ""
    split: str = ""
    category: str | None = None
    language: Language | None = None
    informal_statement: str | None = None
    informal_proof: str | None = None
    source: str | None = None

    @field_validator("name")
    @classmethod
    def _no_whitespace(cls, value: str) -> str:
        if value != value.strip() or any(char.isspace() for char in value):
            raise ValueError("must be a theorem name without whitespace")
        return value

    @field_validator("split")
    @classmethod
    def _split_word(cls, value: str) -> str:
        if any(char.isspace() for char in value):
            raise ValueError("must be a split name without whitespace")
        return value.lower()


def lean_statement_problem(statement: str) -> str | None:
    """What is wrong with a Lean statement as a dataset gives it, or None when it is well formed.

    Well formed: a `theorem`/`lemma` declaration (after comments, attributes or a docstring) whose
    signature ends with `:= by` and nothing after it: the statement without its proof.
    """
    found = declarations(statement)
    masked = mask(statement)
    if not found or masked[: found[0].start].strip():
        return "must start with `theorem <name>`"
    end = found[0].signature_end
    if end < 0 or masked[end:].split() != ["by"]:
        return "must end with `:= by` (the statement without its proof)"
    return None


class _PolicyCheck:
    """The source policy at load time, each distinct header checked once (a benchmark repeats one)."""

    def __init__(self, policy: SourcePolicy) -> None:
        self.policy = policy
        self._headers: dict[str, str | None] = {}

    def problem(self, header: str, statement: str) -> tuple[str, str] | None:
        """`(field, reason)` for the first breach of the policy, or None."""
        too_large = check_sizes(self.policy, statement=statement)
        if too_large is not None:
            return "formal_statement", too_large
        if header not in self._headers:
            self._headers[header] = check_header(header, self.policy)
        reason = self._headers[header]
        return None if reason is None else ("header", reason)


def _record_problem(record: _JsonlRecord, where: str, language: Language | None, policy: _PolicyCheck) -> Problem:
    if record.language is not None and language is not None and record.language is not language:
        raise DatasetError(
            f"{where}: field 'language': {record.language.value!r}, but the file was read as {language.value}"
        )
    chosen = record.language or language or Language.LEAN4
    if chosen is Language.LEAN4:
        issue = lean_statement_problem(record.formal_statement)
        if issue is not None:
            hint = ""
            if record.header.lstrip().startswith("theory "):
                hint = " (the header is an Isabelle theory: read the file with language=isabelle)"
            raise DatasetError(f"{where}: field 'formal_statement': {issue}{hint}")
        breach = policy.problem(record.header, record.formal_statement)
        if breach is not None:
            raise DatasetError(f"{where}: field {breach[0]!r}: {breach[1]}")
    return Problem(
        name=record.name,
        header=record.header,
        formal_statement=record.formal_statement,
        language=chosen,
        informal_statement=record.informal_statement,
        informal_proof=record.informal_proof,
        split=record.split,
        category=record.category or category_of(record.name).value,
        source=where,
        upstream=record.source or "",
    )


def _load_jsonl(
    path: Path, *, language: Language | None, splits: Sequence[str] | None, policy: SourcePolicy
) -> Dataset:
    """Read one problem a line; `splits`, when given, are the only splits allowed (and their order)."""
    check = _PolicyCheck(policy)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from error
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from error
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if splits is not None:  # a benchmark's records say where they belong and what they import
            for required in ("split", "header"):
                if required not in data:
                    raise DatasetError(f"{where}: field {required!r}: Field required")
        try:
            record = _JsonlRecord.model_validate(data)
        except ValidationError as error:
            issue = error.errors()[0]
            field = ".".join(str(part) for part in issue["loc"]) or "record"
            raise DatasetError(f"{where}: field {field!r}: {issue['msg']}") from error
        if splits is not None and record.split not in splits:
            choices = " or ".join(repr(split) for split in splits)
            raise DatasetError(f"{where}: field 'split': must be {choices}, got {record.split!r}")
        if record.name in seen:
            raise DatasetError(f"{where}: field 'name': {record.name!r} already appears on line {seen[record.name]}")
        seen[record.name] = number
        problems.append(_record_problem(record, where, language, check))
    if not problems:
        raise DatasetError(f"{path}: no records")
    if splits is not None:
        problems.sort(key=lambda problem: splits.index(problem.split))  # stable: file order within a split
    return Dataset(tuple(problems), str(path), "jsonl", hashlib.sha256(raw).hexdigest())


_SORRY_ONLY = re.compile(r"\s*by\s+sorry\s*")
"""What an upstream file holds after the statement's `:=`."""


def _load_checkout(root: Path, policy: SourcePolicy) -> Dataset:
    digest = hashlib.sha256()
    check = _PolicyCheck(policy)
    problems: list[Problem] = []
    found_any_dir = False
    for split in SPLITS:
        directory = root / "MiniF2F" / _SPLIT_DIRS[split]
        if not directory.is_dir():
            continue
        found_any_dir = True
        for file in sorted(directory.glob("*.lean")):
            raw = file.read_bytes()
            digest.update(file.relative_to(root).as_posix().encode("utf-8") + b"\0" + raw + b"\0")
            problems.append(_parse_theorem_file(file, raw, split, file.relative_to(root).as_posix(), check))
    if not found_any_dir:
        raise DatasetError(
            f"{root}: not a miniF2F-lean4 checkout (expected MiniF2F/Valid/*.lean and MiniF2F/Test/*.lean); "
            "run `prover setup` or pass --dataset with a JSONL file"
        )
    if not problems:
        raise DatasetError(f"{root}: MiniF2F/Valid and MiniF2F/Test hold no .lean files")
    names: dict[str, str] = {}
    for problem in problems:
        if problem.name in names:
            raise DatasetError(f"{problem.source}: theorem {problem.name!r} is also in {names[problem.name]}")
        names[problem.name] = problem.source
    return Dataset(tuple(problems), str(root), "checkout", digest.hexdigest())


def _parse_theorem_file(file: Path, raw: bytes, split: str, relative: str, policy: _PolicyCheck) -> Problem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{file}: not UTF-8 text ({error})") from error
    parts = split_declaration(text)
    if parts is None or not _SORRY_ONLY.fullmatch(parts[3]):
        raise DatasetError(
            f"{file}: expected a header, then `theorem {file.stem} ... := by`, then ` sorry` and nothing else"
        )
    header, name, statement, _ = parts
    if name != file.stem:
        raise DatasetError(f"{file}: the theorem is named {name!r} but the file is {file.name}")
    breach = policy.problem(header, statement)
    if breach is not None:
        raise DatasetError(f"{file}: {breach[0].replace('formal_statement', 'statement')}: {breach[1]}")
    return Problem(
        name=name,
        header=header,
        formal_statement=statement,
        split=split,
        category=category_of(name).value,
        source=str(file),
        upstream=relative,
    )


_UPSTREAM = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<commit>[0-9a-fA-F]{6,40}):(?P<path>.+)$")


def dojo_locations(dataset: Dataset, repo_url: str | None = None, commit: str | None = None) -> dict[str, DojoLocation]:
    """Where LeanDojo finds each problem of `dataset`: `{name: DojoLocation}`, for `DojoLeanEnv(locate=...)`.

    The file of each problem comes from its `upstream` (the checkout-relative path, or the path in a
    JSONL record's `owner/repo@commit:path`). `repo_url` and `commit` default to the checkout itself
    (its directory and git HEAD) or to the record's GitHub repository and commit. Raises `DatasetError`
    naming the problem when a location cannot be worked out, or when a problem is not Lean 4.
    """
    from lean_env.dojo import DojoLocation

    located: dict[str, DojoLocation] = {}
    checkout_commit: str | None = None
    if dataset.kind == "checkout" and commit is None:
        checkout_commit = _checkout_head(Path(dataset.source))
    for problem in dataset.problems:
        if problem.language is not Language.LEAN4:
            raise DatasetError(
                f"{problem.source}: {problem.name} is a {problem.language.value} problem; LeanDojo runs Lean 4"
            )
        match = _UPSTREAM.match(problem.upstream)
        if dataset.kind == "checkout":
            path, repo, rev = problem.upstream, repo_url or dataset.source, commit or checkout_commit
        elif match is not None:
            path = match.group("path")
            repo = repo_url or f"https://github.com/{match.group('repo')}"
            rev = commit or match.group("commit")
        else:
            raise DatasetError(
                f"{problem.source}: no `source` of the form owner/repo@commit:path to locate {problem.name} "
                "for LeanDojo; pass --dojo-repo and --dojo-commit with a checkout"
            )
        if not rev:
            raise DatasetError(f"{dataset.source}: not a git checkout; pass --dojo-commit for LeanDojo")
        located[problem.name] = DojoLocation(repo_url=repo, commit=rev, file_path=path, full_name=problem.name)
    return located


def _checkout_head(directory: Path) -> str | None:
    """HEAD of the git repository whose top level is `directory` (not of a repository it sits inside)."""
    return git_head(directory) if is_checkout_root(directory) else None

"""Loading miniF2F statements from an upstream checkout or a JSONL file, filtering them, naming categories.

Two sources are understood:
- a checkout of yangky11/miniF2F-lean4: `MiniF2F/Valid/<name>.lean` and `MiniF2F/Test/<name>.lean`, one
  theorem per file, written as header, then `theorem <name> ... := by`, then ` sorry`;
- a JSONL file with one record per line and at least the fields `name`, `split` (`valid` or `test`),
  `header` and `formal_statement` (the statement through its final `:= by`), as in
  `minif2f_lean4.jsonl`; other fields are ignored.

Malformed input raises `DatasetError` naming the file, the line (JSONL) and the field at fault.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lean_env.types import DojoLocation, Theorem
from prover.statements import split_declaration

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
class Problem:
    """One benchmark problem: the theorem to prove plus where it comes from.

    `source` says where the statement was read (`<file>` or `<file>:<line>`); `upstream` where it comes
    from originally, as `owner/repo@commit:path` (a JSONL record's `source` field), or the path of the
    theorem's file relative to the checkout.
    """

    theorem: Theorem
    split: str
    category: Category
    source: str = ""
    upstream: str = ""

    @property
    def name(self) -> str:
        return self.theorem.name


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
    def theorems(self) -> list[Theorem]:
        return [problem.theorem for problem in self.problems]

    @property
    def names(self) -> list[str]:
        return [problem.name for problem in self.problems]

    @property
    def selection_sha256(self) -> str:
        digest = hashlib.sha256()
        for problem in self.problems:
            for part in (problem.name, problem.theorem.header, problem.theorem.formal_statement):
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

        `splits`: any of `valid`, `test` (`all` means both). `pattern`: shell-style globs on the name,
        comma-separated (`mathd_*,amc12a_*`). `categories`: category values (`mathd_algebra`, `amc`, ...).
        `limit`: keep the first N after the other filters. Raises `DatasetError` for an unknown value.
        """
        problems: Sequence[Problem] = self.problems
        if splits is not None:
            wanted = _parse_splits(splits)
            problems = [problem for problem in problems if problem.split in wanted]
        if pattern:
            globs = [part.strip() for part in pattern.split(",") if part.strip()]
            problems = [problem for problem in problems if any(fnmatch.fnmatchcase(problem.name, g) for g in globs)]
        if categories is not None:
            chosen = _parse_categories(categories)
            problems = [problem for problem in problems if problem.category in chosen]
        if limit is not None:
            if limit < 1:
                raise DatasetError(f"limit: must be >= 1, got {limit}")
            problems = problems[:limit]
        return replace(self, problems=tuple(problems))


def _parse_splits(splits: Iterable[str]) -> set[str]:
    wanted: set[str] = set()
    for split in splits:
        value = split.strip().lower()
        if value == "all":
            wanted.update(SPLITS)
        elif value in SPLITS:
            wanted.add(value)
        else:
            raise DatasetError(f"split: unknown split {split!r}; choose from valid, test, all")
    return wanted


def _parse_categories(categories: Iterable[str | Category]) -> set[Category]:
    chosen: set[Category] = set()
    for category in categories:
        try:
            chosen.add(Category(str(category).strip().lower()))
        except ValueError:
            known = ", ".join(c.value for c in Category)
            raise DatasetError(f"category: unknown category {category!r}; choose from {known}") from None
    return chosen


def load_dataset(
    path: Path,
    *,
    splits: Iterable[str] | None = None,
    pattern: str | None = None,
    categories: Iterable[str | Category] | None = None,
    limit: int | None = None,
) -> Dataset:
    """Read miniF2F from a checkout directory or a JSONL file, then apply the filters of `Dataset.select`.

    Problems come in split order (valid, then test) and, within a split, in file order (JSONL) or by
    name (checkout). Raises `DatasetError` when the path is missing, a record or file is malformed,
    or a name appears twice.
    """
    path = Path(path)
    if path.is_dir():
        dataset = _load_checkout(path)
    elif path.is_file():
        dataset = _load_jsonl(path)
    else:
        raise DatasetError(
            f"{path}: no such file or directory; give a miniF2F-lean4 checkout (run `prover setup`) "
            "or a JSONL file with name, split, header and formal_statement"
        )
    return dataset.select(splits=splits, pattern=pattern, categories=categories, limit=limit)


class _JsonlRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    split: Literal["valid", "test"]
    header: str
    formal_statement: str
    source: str | None = None

    @field_validator("name")
    @classmethod
    def _no_whitespace(cls, value: str) -> str:
        if value != value.strip() or any(char.isspace() for char in value):
            raise ValueError("must be a theorem name without whitespace")
        return value

    @field_validator("formal_statement")
    @classmethod
    def _statement_shape(cls, value: str) -> str:
        problem = _statement_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


_STATEMENT_START = re.compile(r"^\s*(?:@\[[^\]]*\]\s*)?(?:theorem|lemma)\s+\S")
_ENDS_WITH_BY = re.compile(r":=\s*by\s*$")


def _statement_problem(statement: str) -> str | None:
    if not _STATEMENT_START.match(statement):
        return "must start with `theorem <name>`"
    if not _ENDS_WITH_BY.search(statement):
        return "must end with `:= by` (the statement without its proof)"
    return None


def _load_jsonl(path: Path) -> Dataset:
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
        try:
            record = _JsonlRecord.model_validate(data)
        except ValidationError as error:
            issue = error.errors()[0]
            field = ".".join(str(part) for part in issue["loc"]) or "record"
            raise DatasetError(f"{where}: field {field!r}: {issue['msg']}") from error
        if record.name in seen:
            raise DatasetError(f"{where}: field 'name': {record.name!r} already appears on line {seen[record.name]}")
        seen[record.name] = number
        theorem = Theorem(name=record.name, header=record.header, formal_statement=record.formal_statement)
        problems.append(Problem(theorem, record.split, category_of(record.name), where, record.source or ""))
    if not problems:
        raise DatasetError(f"{path}: no records")
    problems.sort(key=lambda problem: SPLITS.index(problem.split))  # stable: file order within a split
    return Dataset(tuple(problems), str(path), "jsonl", hashlib.sha256(raw).hexdigest())


_SORRY_ONLY = re.compile(r"\s*by\s+sorry\s*")
"""What an upstream file holds after the statement's `:=`."""


def _load_checkout(root: Path) -> Dataset:
    digest = hashlib.sha256()
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
            problems.append(_parse_theorem_file(file, raw, split, file.relative_to(root).as_posix()))
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


def _parse_theorem_file(file: Path, raw: bytes, split: str, relative: str) -> Problem:
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
    theorem = Theorem(name=name, header=header, formal_statement=statement)
    return Problem(theorem, split, category_of(name), str(file), relative)


_UPSTREAM = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<commit>[0-9a-fA-F]{6,40}):(?P<path>.+)$")


def with_dojo_locations(dataset: Dataset, repo_url: str | None = None, commit: str | None = None) -> Dataset:
    """The dataset with a LeanDojo location on every theorem, for the `dojo` backend.

    The file of each theorem comes from its `upstream` (the checkout-relative path, or the path in a
    JSONL record's `owner/repo@commit:path`). `repo_url` and `commit` default to the checkout itself
    (its directory and git HEAD) or to the record's GitHub repository and commit. Raises `DatasetError`
    naming the problem when a location cannot be worked out.
    """
    located: list[Problem] = []
    checkout_commit: str | None = None
    if dataset.kind == "checkout" and commit is None:
        checkout_commit = _git_head(Path(dataset.source))
    for problem in dataset.problems:
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
        location = DojoLocation(repo_url=repo, commit=rev, file_path=path, full_name=problem.name)
        located.append(replace(problem, theorem=replace(problem.theorem, location=location)))
    return replace(dataset, problems=tuple(located))


def _git_head(directory: Path) -> str | None:
    """HEAD of the git repository whose top level is `directory` (not of a repository it sits inside)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    if len(lines) != 2 or Path(lines[0]).resolve() != directory.resolve():
        return None
    return lines[1]

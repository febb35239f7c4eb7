"""Prompts of the informal-to-formal pipeline: the draft prompt and the sketch prompts of both languages.

Isabelle follows the Llemma harness exactly (wellecks' lm-evaluation-harness, task
`minif2f_isabelle_informal2formal`): two few-shot sets of Draft-Sketch-Prove exemplars, `numbertheory` when
the formal statement contains that word and `other` otherwise, each exemplar followed by four newlines,
then the query `Informal:\\n(*### Problem\\n\\n{statement}\\n\\n### Solution\\n\\n{proof} *)\\n\\nFormal:\\n{formal
statement}`. The exemplars ship as package data (`data/isabelle_exemplars.json`, derived from the DSP
paper prompts under their licence, `data/DSP_LICENSE.txt`). Lean 4 uses the same layout with a comment
`/- ... -/` and our own exemplars (`data/lean_exemplars.json`, none a miniF2F problem).

Two rules hold for every prompt: the problem being solved is never among its own exemplars (same name,
or a normalised statement more than `SIMILARITY_LIMIT` similar), and nothing but a `Problem`'s name,
statements and informal proof is rendered, so a data set's `reference_proof` can never reach the model.
`PromptSet.from_file` replaces any template or exemplar list from a JSON file.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from lean_env.types import Language, Problem

SIMILARITY_LIMIT = 0.9
"""An exemplar whose normalised statement is more similar than this (difflib ratio) to the problem's is dropped."""

ISABELLE_SKETCH_TEMPLATE = (
    "Informal:\n(*### Problem\n\n{informal_statement}\n\n### Solution\n\n{informal_proof} *)"
    "\n\nFormal:\n{formal_statement}"
)
LEAN_SKETCH_TEMPLATE = (
    "Informal:\n/- ### Problem\n\n{informal_statement}\n\n### Solution\n\n{informal_proof} -/"
    "\n\nFormal:\n{formal_statement}"
)
DRAFT_TEMPLATE = "### Problem\n\n{informal_statement}\n\n### Solution\n\n"
DRAFT_EXEMPLAR_TEMPLATE = "### Problem\n\n{informal_statement}\n\n### Solution\n\n{informal_proof}"
SEPARATOR = "\n\n\n\n"

NUMBER_THEORY = "numbertheory"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class Exemplar:
    """One few-shot example: its informal and formal parts, and its text as the prompt shows it."""

    name: str
    informal_statement: str
    informal_proof: str
    formal_statement: str
    text: str
    """The whole exemplar as rendered in a sketch prompt (informal block, `Formal:`, statement and sketch)."""


@dataclass(frozen=True, slots=True)
class PromptSet:
    """Templates and exemplars for drafts and sketches; build with `PromptSet.default()` or `from_file`.

    `sets[language][group]` lists exemplar names in prompt order; the group of a problem is
    `numbertheory` when its formal statement contains that word, else `other` (the harness's rule).
    Templates use `str.format` fields `informal_statement`, `informal_proof`, `formal_statement`.
    """

    sketch_templates: Mapping[str, str]
    draft_template: str
    draft_exemplar_template: str
    separator: str
    exemplars: Mapping[str, Mapping[str, Exemplar]]
    sets: Mapping[str, Mapping[str, tuple[str, ...]]]
    similarity_limit: float = SIMILARITY_LIMIT
    source: str = field(default="package data", compare=False)

    @classmethod
    def default(cls) -> PromptSet:
        """The shipped prompts: the Llemma harness for Isabelle, our own set for Lean 4."""
        data = resources.files("prover.informal") / "data"
        isabelle = json.loads((data / "isabelle_exemplars.json").read_text(encoding="utf-8"))
        lean = json.loads((data / "lean_exemplars.json").read_text(encoding="utf-8"))
        isabelle_exemplars = {row["name"]: _from_dsp_text(row["name"], row["text"]) for row in isabelle["exemplars"]}
        lean_exemplars = {row["name"]: _lean_exemplar(row, LEAN_SKETCH_TEMPLATE) for row in lean["exemplars"]}
        lean_names = tuple(lean_exemplars)
        return cls(
            sketch_templates={
                Language.ISABELLE.value: ISABELLE_SKETCH_TEMPLATE,
                Language.LEAN4.value: LEAN_SKETCH_TEMPLATE,
            },
            draft_template=DRAFT_TEMPLATE,
            draft_exemplar_template=DRAFT_EXEMPLAR_TEMPLATE,
            separator=isabelle.get("separator", SEPARATOR),
            exemplars={Language.ISABELLE.value: isabelle_exemplars, Language.LEAN4.value: lean_exemplars},
            sets={
                Language.ISABELLE.value: {group: tuple(names) for group, names in isabelle["sets"].items()},
                Language.LEAN4.value: {NUMBER_THEORY: lean_names, OTHER: lean_names},
            },
        )

    @classmethod
    def from_file(cls, path: Path | str, base: PromptSet | None = None) -> PromptSet:
        """`base` (default: the shipped prompts) with the parts a JSON file names replaced.

        Keys (all optional): `sketch_templates` ({"isabelle": ..., "lean4": ...}), `draft_template`,
        `draft_exemplar_template`, `separator`, `similarity_limit`, and `exemplars` ({language: [{name,
        informal_statement, informal_proof, formal_statement, sketch}]}), which replaces that language's
        exemplars and makes them its one set for every problem. Unknown keys raise `ValueError`.
        """
        target = Path(path)
        try:
            raw: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"prompt file {target}: {error}") from error
        known = {
            "sketch_templates",
            "draft_template",
            "draft_exemplar_template",
            "separator",
            "similarity_limit",
            "exemplars",
        }
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"prompt file {target}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        prompts = base or cls.default()
        templates = dict(prompts.sketch_templates) | dict(raw.get("sketch_templates", {}))
        exemplars = dict(prompts.exemplars)
        sets = dict(prompts.sets)
        for language, rows in raw.get("exemplars", {}).items():
            language = Language(language).value
            template = templates[language]
            built = {row["name"]: _lean_exemplar(row, template) for row in rows}
            exemplars[language] = built
            sets[language] = {NUMBER_THEORY: tuple(built), OTHER: tuple(built)}
        return replace(
            prompts,
            sketch_templates=templates,
            draft_template=raw.get("draft_template", prompts.draft_template),
            draft_exemplar_template=raw.get("draft_exemplar_template", prompts.draft_exemplar_template),
            separator=raw.get("separator", prompts.separator),
            similarity_limit=float(raw.get("similarity_limit", prompts.similarity_limit)),
            exemplars=exemplars,
            sets=sets,
            source=str(target),
        )

    def exemplars_for(self, problem: Problem) -> tuple[Exemplar, ...]:
        """The exemplars of `problem`'s language and group, in order, without the problem itself."""
        language = problem.language.value
        group = NUMBER_THEORY if NUMBER_THEORY in problem.formal_statement else OTHER
        names = self.sets.get(language, {}).get(group, ())
        table = self.exemplars.get(language, {})
        return tuple(table[name] for name in names if not self.is_same_problem(table[name], problem))

    def is_same_problem(self, exemplar: Exemplar, problem: Problem) -> bool:
        """Whether `exemplar` is `problem` itself: same name (ignoring case) or near-identical statements."""
        if exemplar.name.casefold() == problem.name.casefold():
            return True
        pairs = [(exemplar.formal_statement, problem.formal_statement)]
        if problem.informal_statement:
            pairs.append((exemplar.informal_statement, problem.informal_statement))
        return any(similarity(a, b) > self.similarity_limit for a, b in pairs)

    def sketch_prompt(self, problem: Problem, informal_proof: str) -> str:
        """The few-shot sketch prompt; the model's continuation is the proof after the formal statement."""
        template = self.sketch_templates[problem.language.value]
        query = template.format(
            informal_statement=problem.informal_statement or "",
            informal_proof=informal_proof,
            formal_statement=problem.formal_statement,
        )
        return "".join(exemplar.text + self.separator for exemplar in self.exemplars_for(problem)) + query

    def draft_prompt(self, problem: Problem) -> str:
        """The few-shot draft prompt: informal problems and solutions; the continuation is the solution."""
        shots = "".join(
            self.draft_exemplar_template.format(
                informal_statement=exemplar.informal_statement, informal_proof=exemplar.informal_proof
            )
            + self.separator
            for exemplar in self.exemplars_for(problem)
        )
        return shots + self.draft_template.format(informal_statement=problem.informal_statement or "")

    def render_for(self, problem: Problem, kind: str) -> str:
        """The prompt `--show-prompt` prints: `kind` is `sketch` or `draft`.

        The sketch is shown with the problem's own informal proof, or a placeholder where the model
        would write the draft first.
        """
        if kind == "draft":
            return self.draft_prompt(problem)
        if kind == "sketch":
            proof = problem.informal_proof or "<the draft the model writes first>"
            return self.sketch_prompt(problem, proof)
        raise ValueError(f"render_for.kind: must be 'sketch' or 'draft', got {kind!r}")


_THEOREM_NAME = re.compile(r"^\s*(theorem|lemma)\s+[^\s:(]+\s*:?", re.MULTILINE)


def normalise(text: str) -> str:
    """Statement text for comparison: declaration name dropped, whitespace collapsed, case folded."""
    return " ".join(_THEOREM_NAME.sub(r"\1 ", text, count=1).split()).casefold()


def similarity(a: str, b: str) -> float:
    """difflib's ratio of the normalised texts (1.0 for identical ones)."""
    return difflib.SequenceMatcher(None, normalise(a), normalise(b), autojunk=False).ratio()


def _from_dsp_text(name: str, text: str) -> Exemplar:
    match = re.match(
        r"Informal:\n\(\*### Problem\n\n(.*?)\n\n### Solution\n\n(.*?)\*\)\n\nFormal:\n(.*)\Z", text, re.DOTALL
    )
    if match is None:
        raise ValueError(f"Isabelle exemplar {name!r}: not in the DSP layout")
    formal = match.group(3)
    statement_end = re.search(r"\n(proof|  sledgehammer|  by|  using|  unfolding|  apply)", formal)
    statement = formal[: statement_end.start()] if statement_end else formal
    return Exemplar(name, match.group(1).strip(), match.group(2).strip(), statement, text)


def _lean_exemplar(row: Mapping[str, Any], template: str) -> Exemplar:
    try:
        name, statement, proof, formal, sketch = (
            row["name"],
            row["informal_statement"],
            row["informal_proof"],
            row["formal_statement"],
            row["sketch"],
        )
    except KeyError as missing:
        raise ValueError(f"exemplar {row.get('name', '?')!r}: missing field {missing}") from None
    text = template.format(informal_statement=statement, informal_proof=proof, formal_statement=formal) + "\n" + sketch
    return Exemplar(name, statement, proof, formal, text)

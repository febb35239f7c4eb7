"""Prompt formats: how a proof state becomes a prompt, where the model's tactic ends, how to cut it out.

Built in:
- `llemma`: the few-shot format of the Llemma formal-to-formal runs (one instruction line, worked
  examples as `Tactic state:` / `---` / state / `---` / `Next tactic:` / `---` / tactic / `---`, the
  query ending after `Next tactic:\\n---\\n`); the tactic is the text before the next `---`. The
  worked examples are our own and none is a miniF2F problem.
- `reprover`: `[GOAL]\\n{state}\\n[PROOFSTEP]\\n` (ReProver, the ntp tutorials).

A user format is a file: a `.toml` file with `template = "..."` and optional `stop = [...]`, or any
other file whose whole text is the template (stop strings then default to a blank line).
Templates use `{{state}}` (required), `{{theorem}}` (the formal statement) and `{{name}}`;
double braces keep Lean's own `{x : α}` binders literal.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lean_env.lean_syntax import clean_tactic
from prover.config import SettingsError
from prover.models.base import PromptTooLong, cut_at_stop
from search.types import GenerationRequest

_PLACEHOLDERS = ("{{state}}", "{{theorem}}", "{{name}}")


@dataclass(frozen=True, slots=True)
class PromptFormat:
    """A prompt template with its stop strings. Immutable; safe to share between backends and threads."""

    name: str
    template: str
    stops: tuple[str, ...]

    def __post_init__(self) -> None:
        if "{{state}}" not in self.template:
            raise ValueError(f"PromptFormat.template of {self.name!r}: must contain the {{{{state}}}} placeholder")
        if any(not stop for stop in self.stops):
            raise ValueError(f"PromptFormat.stops of {self.name!r}: stop strings must be non-empty")

    def render(self, request: GenerationRequest) -> str:
        """The prompt for `request`: the template with the state (and the theorem, if shown) filled in."""
        theorem = request.theorem
        values = {
            "{{state}}": request.state.pp,
            "{{theorem}}": theorem.formal_statement if theorem is not None else "",
            "{{name}}": theorem.name if theorem is not None else "",
        }
        # One pass over the template so a state that happens to contain "{{name}}" is left alone.
        out: list[str] = []
        rest = self.template
        while rest:
            hits = [(rest.find(key), key) for key in _PLACEHOLDERS if key in rest]
            if not hits:
                out.append(rest)
                break
            index, key = min(hits)
            out.append(rest[:index])
            out.append(values[key])
            rest = rest[index + len(key) :]
        return "".join(out)

    def extract(self, completion: str) -> str:
        """The tactic in a completion: the text before the first stop string, cleaned (may be empty)."""
        return clean_tactic(cut_at_stop(completion, self.stops))


def _llemma_block(state: str, tactic: str | None) -> str:
    block = f"Tactic state:\n---\n{state}\n---\nNext tactic:\n---\n"
    return block if tactic is None else f"{block}{tactic}\n---\n\n"


# Our own worked examples (generic lemmas, none from miniF2F), one per common tactic style.
LLEMMA_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "α : Type u_1\ns t : Set α\nhst : s ⊆ t\nx : α\nhx : x ∈ s\n⊢ x ∈ t",
        "exact hst hx",
    ),
    (
        "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q",
        "exact ⟨hp, hq⟩",
    ),
    (
        "x y : ℝ\nh₀ : x < y\n⊢ x < y + 1",
        "linarith",
    ),
    (
        "n : ℕ\n⊢ n * 1 + 0 = n",
        "simp",
    ),
)

LLEMMA_INSTRUCTION = "Given a Lean 4 tactic state, suggest the next tactic.\n\n"

LLEMMA = PromptFormat(
    name="llemma",
    template=LLEMMA_INSTRUCTION
    + "".join(_llemma_block(state, tactic) for state, tactic in LLEMMA_EXAMPLES)
    + _llemma_block("{{state}}", None),
    stops=("---",),
)

REPROVER = PromptFormat(
    name="reprover",
    template="[GOAL]\n{{state}}\n[PROOFSTEP]\n",
    # Fine-tuned models end the tactic with EOS; a base model continues with the next pair instead.
    stops=("[GOAL]", "[PROOFSTEP]", "\n\n"),
)

BUILT_IN: dict[str, PromptFormat] = {LLEMMA.name: LLEMMA, REPROVER.name: REPROVER}
DEFAULT_FILE_STOPS: tuple[str, ...] = ("\n\n",)


def load_prompt_format(spec: str) -> PromptFormat:
    """`llemma`, `reprover`, or the path of a template file (see the module docstring).

    Raises `SettingsError` naming `model.prompt_format` when the file is missing or malformed.
    """
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SettingsError(
            f"model.prompt_format: {spec!r} is neither a built-in format ({', '.join(BUILT_IN)}) nor a template file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"model.prompt_format: cannot read {path}: {error}") from error
    template: object = text
    stops: tuple[str, ...] = DEFAULT_FILE_STOPS
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"model.prompt_format: {path} is not valid TOML: {error}") from error
        unknown = set(data) - {"template", "stop"}
        if unknown:
            raise SettingsError(f"model.prompt_format: {path} has unknown keys {sorted(unknown)} (template, stop)")
        template = data.get("template")
        declared = data.get("stop", list(DEFAULT_FILE_STOPS))
        if not isinstance(declared, list) or not all(isinstance(stop, str) and stop for stop in declared):
            raise SettingsError(f"model.prompt_format: {path}: `stop` must be a list of non-empty strings")
        stops = tuple(declared)
    if not isinstance(template, str) or "{{state}}" not in template:
        raise SettingsError(f"model.prompt_format: the template in {path} must contain {{{{state}}}}")
    return PromptFormat(name=str(path), template=template, stops=stops)


def check_prompt_lengths(
    lengths: Sequence[int], max_new_tokens: int | Sequence[int], context_length: int | None, model_name: str
) -> None:
    """Raise `PromptTooLong` if any prompt of `lengths` tokens plus its new tokens exceeds the context.

    `max_new_tokens` is one budget for all prompts or one per prompt. The error names the model,
    the sizes and the indices of the prompts at fault.
    """
    if context_length is None or context_length <= 0:
        return
    budgets = [max_new_tokens] * len(lengths) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    bad = [index for index, length in enumerate(lengths) if length + budgets[index] > context_length]
    if not bad:
        return
    worst = max(bad, key=lambda index: lengths[index] + budgets[index])
    raise PromptTooLong(
        f"{len(bad)} prompt(s) do not fit model {model_name!r}: the longest has {lengths[worst]} tokens, which with "
        f"max_new_tokens={budgets[worst]} exceeds the model's context of {context_length} tokens "
        "(lower model.max_new_tokens or use a shorter prompt format)",
        indices=bad,
    )

"""Prompt formats, candidate post-processing and sampling settings (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_env.types import ProofState, Theorem
from prover.config import SettingsError
from prover.models.base import (
    PromptTooLong,
    RawCompletion,
    SamplingConfig,
    cut_at_stop,
    finalize_candidates,
    tokens_until_stop,
)
from prover.models.prompts import (
    LLEMMA,
    LLEMMA_EXAMPLES,
    REPROVER,
    PromptFormat,
    check_prompt_lengths,
    load_prompt_format,
)
from search.types import GenerationRequest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
STATE = "x : ℕ\nh₀ : x + 1 = 3\n⊢ x = 2"


def request(state: str = STATE, theorem: Theorem | None = None) -> GenerationRequest:
    return GenerationRequest(ProofState.from_pp(state), 4, theorem)


def test_llemma_prompt_shape() -> None:
    prompt = LLEMMA.render(request())
    # The query block comes last and ends where the model must write the tactic.
    assert prompt.endswith(f"Tactic state:\n---\n{STATE}\n---\nNext tactic:\n---\n")
    assert prompt.count("Tactic state:\n---\n") == len(LLEMMA_EXAMPLES) + 1 >= 4
    first_line = prompt.splitlines()[0]
    assert "Lean 4" in first_line and "tactic" in first_line
    for state, tactic in LLEMMA_EXAMPLES:
        assert f"Tactic state:\n---\n{state}\n---\nNext tactic:\n---\n{tactic}\n---\n" in prompt
    assert LLEMMA.stops == ("---",)


def test_llemma_examples_are_not_minif2f_problems() -> None:
    path = DATA / "minif2f_lean4_llemma.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    statements = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [json.dumps(row, ensure_ascii=False) for row in statements]
    assert len(texts) > 200
    for state, _ in LLEMMA_EXAMPLES:
        goal = state.split("⊢", 1)[1].strip()
        assert not any(goal in text for text in texts), f"example goal {goal!r} appears in miniF2F"


def test_extract_cuts_at_the_first_stop_and_cleans() -> None:
    assert LLEMMA.extract("  nlinarith [sq_nonneg x]\n---\nTactic state:\n---\n") == "nlinarith [sq_nonneg x]"
    assert LLEMMA.extract("simp\n") == "simp"  # no stop (ran out of tokens or EOS): the whole text
    assert LLEMMA.extract("---") == ""
    multi = "induction n with\n  | zero => simp\n  | succ k ih => omega\n---"
    assert LLEMMA.extract(multi) == "induction n with\n  | zero => simp\n  | succ k ih => omega"
    assert REPROVER.extract("exact h\n\n[GOAL]") == "exact h"


def test_reprover_prompt() -> None:
    assert REPROVER.render(request()) == f"[GOAL]\n{STATE}\n[PROOFSTEP]\n"


def test_template_file_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("-- {{name}}: {{theorem}}\n/- state {x : α} -/\n{{state}}\nTACTIC: ", encoding="utf-8")
    fmt = load_prompt_format(str(path))
    theorem = Theorem("t1", "", "theorem t1 (x : ℕ) : x = x := by")
    prompt = fmt.render(request(theorem=theorem))
    assert prompt == f"-- t1: theorem t1 (x : ℕ) : x = x := by\n/- state {{x : α}} -/\n{STATE}\nTACTIC: "
    assert fmt.stops == ("\n\n",)
    # A state that happens to contain a placeholder is inserted verbatim.
    assert "{{name}}" in fmt.render(request(state="⊢ {{name}} = 1"))


def test_template_file_toml(tmp_path: Path) -> None:
    path = tmp_path / "fmt.toml"
    path.write_text('template = "S: {{state}}\\nT:"\nstop = ["\\n", "S:"]\n', encoding="utf-8")
    fmt = load_prompt_format(str(path))
    assert fmt.render(request("⊢ True")) == "S: ⊢ True\nT:"
    assert fmt.stops == ("\n", "S:")
    assert fmt.extract(" trivial\nS: junk") == "trivial"


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("no_state.txt", "no placeholder here", "{{state}}"),
        ("bad.toml", "template = ", "not valid TOML"),
        ("keys.toml", 'template = "{{state}}"\nstops = ["x"]', "unknown keys"),
        ("stop.toml", 'template = "{{state}}"\nstop = [""]', "non-empty"),
    ],
)
def test_bad_template_files_name_the_setting(tmp_path: Path, name: str, text: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_prompt_format(str(path))
    assert "model.prompt_format" in str(info.value) and needle in str(info.value)


def test_unknown_format_name() -> None:
    with pytest.raises(SettingsError, match="neither a built-in format"):
        load_prompt_format("llama-chat")
    with pytest.raises(ValueError, match="state"):
        PromptFormat("x", "no state", ())


def test_prompt_length_check_names_model_and_indices() -> None:
    check_prompt_lengths([10, 20], 100, 120, "m")
    with pytest.raises(PromptTooLong) as info:
        check_prompt_lengths([10, 30, 25], 100, 120, "EleutherAI/llemma_7b")
    assert info.value.indices == (1, 2)
    message = str(info.value)
    assert "EleutherAI/llemma_7b" in message and "30 tokens" in message and "120" in message
    check_prompt_lengths([10_000], 100, None, "no context known")


def test_finalize_dedups_keeping_the_best_and_orders_by_mean_logprob() -> None:
    completions = [
        RawCompletion("simp\n---", -3.0, 3),  # mean -1.0
        RawCompletion("linarith---", -1.0, 2),  # mean -0.5
        RawCompletion(" simp \n---junk", -1.2, 4),  # same tactic, better mean -0.3: kept
        RawCompletion("---", -0.1, 1),  # empty tactic: dropped
        RawCompletion("norm_num", -2.0, 4),  # mean -0.5, ties with linarith: generation order
    ]
    out = finalize_candidates(completions, LLEMMA.extract)
    assert [(c.text, c.logprob, c.num_tokens) for c in out] == [
        ("simp", -1.2, 4),
        ("linarith", -1.0, 2),
        ("norm_num", -2.0, 4),
    ]
    assert [c.text for c in finalize_candidates(completions, LLEMMA.extract, limit=2)] == ["simp", "linarith"]


def test_tokens_until_stop() -> None:
    pieces = ["ex", "act", " h", "\n-", "--", "\nTactic"]

    def decode(ids: object) -> str:
        return "".join(pieces[i] for i in ids)  # type: ignore[attr-defined]

    ids = list(range(len(pieces)))
    assert tokens_until_stop(ids, decode, ["---"]) == 5  # the stop string spans tokens 3 and 4
    assert tokens_until_stop(ids, decode, ["zzz"]) == 6
    assert tokens_until_stop(ids, decode, ["---"], eos_token_id=2) == 3
    assert cut_at_stop(decode(ids), ["---", "\nT"]) == "exact h\n"


def test_sampling_config_validates_and_maps_settings() -> None:
    from prover.config import ModelSettings

    config = SamplingConfig.from_settings(ModelSettings(temperature=0.7, top_k=5, max_new_tokens=64, seed=3))
    assert (config.temperature, config.top_k, config.max_new_tokens, config.seed) == (0.7, 5, 64, 3)
    assert not config.beam_search and SamplingConfig().beam_search
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingConfig(max_new_tokens=0)

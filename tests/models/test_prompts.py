"""Prompt formats, candidate post-processing and sampling settings (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_env.types import ProofState, Theorem
from prover.config import SettingsError
from prover.models.base import (
    PromptTooLong,
    SamplingConfig,
    cut_at_stop,
    finalize_candidates,
)
from prover.models.prompts import (
    LLEMMA,
    LLEMMA_EXAMPLES,
    REPROVER,
    PromptFormat,
    check_prompt_lengths,
    load_prompt_format,
)
from prover.models.text import Completion, FinishReason, TextRequest
from search.types import GenerationRequest
from tests.shared_data import shared_data_file

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
    path = shared_data_file("minif2f_lean4_llemma.jsonl")
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
    def completion(text: str, logprob: float, tokens: int) -> Completion:
        return Completion(text, (logprob / tokens,) * tokens, FinishReason.STOP)

    completions = [
        completion("simp\n---", -3.0, 3),  # mean -1.0
        completion("linarith---", -1.0, 2),  # mean -0.5
        completion(" simp \n---junk", -1.2, 4),  # same tactic, better mean -0.3: kept
        completion("---", -0.1, 1),  # empty tactic: dropped
        completion("norm_num", -2.0, 4),  # mean -0.5, ties with linarith: generation order
        Completion("omega", (), FinishReason.EOS),  # no tokens reported: counted as one
    ]
    out = finalize_candidates(completions, LLEMMA.extract)
    assert [(c.text, round(c.logprob, 9), c.num_tokens) for c in out] == [
        ("omega", 0.0, 1),
        ("simp", -1.2, 4),
        ("linarith", -1.0, 2),
        ("norm_num", -2.0, 4),
    ]
    assert [c.text for c in finalize_candidates(completions, LLEMMA.extract, limit=2)] == ["omega", "simp"]


def test_cut_at_stop() -> None:
    assert cut_at_stop("exact h\n---\nTactic", ["---", "\nT"]) == "exact h\n"


def test_sampling_config_validates_and_maps_settings() -> None:
    from prover.config import ModelSettings

    config = SamplingConfig.from_settings(ModelSettings(temperature=0.7, top_k=5, max_new_tokens=64, seed=3))
    assert (config.temperature, config.top_k, config.max_new_tokens, config.seed) == (0.7, 5, 64, 3)
    assert not config.beam_search and SamplingConfig().beam_search
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingConfig(max_new_tokens=0)


def test_prompt_length_check_takes_one_budget_per_prompt() -> None:
    check_prompt_lengths([10, 20], [110, 100], 120, "m")
    with pytest.raises(PromptTooLong) as info:
        check_prompt_lengths([10, 20, 30], [111, 10, 91], 120, "m")
    assert info.value.indices == (0, 2) and "max_new_tokens=111" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 0),
        ("max_tokens", 0),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -1),
        ("stop", "---"),
        ("stop", ("",)),
        ("seed", -1),
        ("beam_search", 1),
    ],
)
def test_text_request_validates_each_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"TextRequest\.{field}"):
        TextRequest("p", **{field: value})  # type: ignore[arg-type]


def test_text_request_and_completion_values() -> None:
    request = TextRequest("p", n=2, stop=["---", "\n\n"])  # type: ignore[arg-type]
    assert request.stop == ("---", "\n\n") and hash(request) == hash(TextRequest("p", n=2, stop=("---", "\n\n")))
    assert request.greedy and not TextRequest("p", beam_search=True).greedy
    assert not TextRequest("p", temperature=0.5).greedy
    completion = Completion("simp", (-0.5, -0.25, -0.25), FinishReason.STOP)
    assert (completion.logprob, completion.num_tokens, completion.mean_logprob) == (-1.0, 3, -1.0 / 3)
    assert Completion("", (), FinishReason.EOS).mean_logprob == 0.0
    assert FinishReason("length") is FinishReason.LENGTH and str(FinishReason.EOS) == "eos"

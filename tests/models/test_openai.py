"""The `openai` backend against a local completions stand-in (real HTTP on 127.0.0.1, real wire format)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("httpx", reason="the openai backend needs httpx (the `openai` extra)")

from lean_env.types import ProofState
from prover.config import ModelSettings
from prover.models import PromptedTacticGenerator, build_generator, build_text_generator
from prover.models.base import GenerationError, PromptTooLong, SamplingConfig
from prover.models.openai_backend import OpenAIGenerator, completion_body, parse_beams, parse_completions
from prover.models.prompts import LLEMMA
from prover.models.text import Completion, FinishReason, TextGenerator, TextRequest
from search.types import GenerationRequest, TacticCandidate
from tests.stand_ins.openai_server import OpenAIStandIn

STATE = "x : ℝ\nh₀ : 2 * x = 6\n⊢ x = 3"
OTHER = "n : ℕ\n⊢ n + 0 = n"
TABLE = {
    STATE: [
        [("lin", -0.2), ("arith", -0.1), ("\n-", -0.05), ("--", -0.05), ("\nTactic", -1.0)],
        [("field", -0.5), ("_simp", -0.3), ("\n---", -0.1)],
        [("lin", -0.2), ("arith", -0.3), ("\n---", -0.1)],  # a duplicate with a worse score
    ],
    OTHER: [[("simp", -0.1), ("\n---", -0.1)]],
}


@pytest.fixture
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(TABLE) as stand_in:
        yield stand_in


def make(urls: list[str], **options: Any) -> OpenAIGenerator:
    defaults: dict[str, Any] = {"timeout_s": 2.0, "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}
    defaults.update(options)
    return OpenAIGenerator(model_name="llemma", base_urls=urls, **defaults)


def tactics(text: OpenAIGenerator, temperature: float = 0.8, top_k: int = 0) -> PromptedTacticGenerator:
    sampling = SamplingConfig(temperature=temperature, max_new_tokens=32, top_k=top_k)
    return PromptedTacticGenerator(text, LLEMMA, sampling)


def ask(
    generator: OpenAIGenerator | PromptedTacticGenerator, *states: str, samples: int = 3
) -> list[list[TacticCandidate]]:
    tactic = generator if isinstance(generator, PromptedTacticGenerator) else tactics(generator)

    async def main() -> list[list[TacticCandidate]]:
        try:
            requests = [GenerationRequest(ProofState.from_pp(s), samples) for s in states]
            return await asyncio.wait_for(tactic.generate(requests), timeout=30)
        finally:
            await tactic.close()

    return asyncio.run(main())


def complete(generator: OpenAIGenerator, *requests: TextRequest) -> list[list[Completion]]:
    """One `complete` call per request, one after another (the stand-in's answers depend on arrival order)."""

    async def main() -> list[list[Completion]]:
        try:
            return [(await asyncio.wait_for(generator.complete([request]), timeout=30))[0] for request in requests]
        finally:
            await generator.close()

    return asyncio.run(main())


def test_candidates_from_the_wire_format(server: OpenAIStandIn) -> None:
    generator = make([server.base_url], api_key="sk-test")
    (candidates,) = ask(generator, STATE)
    # Text cut at the stop; log-prob summed over every token the server generated (stop token included).
    assert [(c.text, c.num_tokens) for c in candidates] == [("linarith", 4), ("field_simp", 3)]
    assert candidates[0].logprob == pytest.approx(-0.4)  # the duplicate with -0.6 was merged away
    assert candidates[1].logprob == pytest.approx(-0.9)
    (body,) = server.log.bodies
    assert server.log.paths == ["/v1/completions"]
    assert body["model"] == "llemma" and body["n"] == 3 and body["stop"] == ["---"]
    assert body["logprobs"] == 1 and body["max_tokens"] == 32 and body["temperature"] == 0.8
    assert body["prompt"].endswith(f"Tactic state:\n---\n{STATE}\n---\nNext tactic:\n---\n")
    assert "top_k" not in body  # off: not sent, so strict servers accept the body
    assert server.log.headers[0]["authorization"] == "Bearer sk-test"


def test_many_requests_are_in_flight_together() -> None:
    with OpenAIStandIn(TABLE, latency_s=0.2) as slow:
        generator = make([slow.base_url])
        rows = ask(generator, STATE, OTHER, STATE, OTHER)
    assert [row[0].text for row in rows] == ["linarith", "simp", "linarith", "simp"]
    assert len(slow.log.bodies) == 4 and slow.max_in_flight == 4


@pytest.mark.parametrize("fault", [429, 500, 503, "malformed", "no_choices", "hang"])
def test_transient_failures_are_retried(server: OpenAIStandIn, fault: int | str) -> None:
    server.hang_s = 1.0
    generator = make([server.base_url], timeout_s=0.3)
    server.fail_next(fault, fault)
    (candidates,) = ask(generator, OTHER)
    assert [c.text for c in candidates] == ["simp"]
    assert generator.retries == 2 and generator.requests_sent == 3


def test_retries_run_out_with_a_clear_error(server: OpenAIStandIn) -> None:
    generator = make([server.base_url], max_retries=2)
    server.fail_next(500, 500, 500)
    with pytest.raises(GenerationError) as info:
        ask(generator, OTHER)
    message = str(info.value)
    assert "3 attempt(s)" in message and "HTTP 500" in message and server.base_url in message


def test_base_urls_rotate_past_a_dead_server(server: OpenAIStandIn) -> None:
    with OpenAIStandIn(TABLE) as broken:
        broken.fail_next(*([500] * 20))
        generator = make([broken.base_url, server.base_url], max_retries=4)
        rows = ask(generator, OTHER, OTHER, OTHER)
    assert all(row[0].text == "simp" for row in rows)
    assert len(server.log.bodies) == 3 and len(broken.log.bodies) >= 1


def test_unreachable_server_is_retried_then_reported() -> None:
    with OpenAIStandIn(TABLE) as gone:
        url = gone.base_url
    generator = make([url], max_retries=1)
    with pytest.raises(GenerationError, match="2 attempt"):
        ask(generator, OTHER)


def test_context_overflow_is_prompt_too_long(server: OpenAIStandIn) -> None:
    generator = make([server.base_url])
    server.fail_next("context")
    with pytest.raises(PromptTooLong) as info:
        ask(generator, OTHER, STATE)
    # Both requests are in flight at once and the server fails whichever arrives first: exactly one
    # search's prompt is named, the other is not failed with it.
    assert "maximum context length" in str(info.value) and len(info.value.indices) == 1
    assert generator.retries == 0


def test_client_errors_are_not_retried(server: OpenAIStandIn) -> None:
    generator = make([server.base_url])
    server.fail_next(401)
    with pytest.raises(GenerationError, match="HTTP 401"):
        ask(generator, OTHER)
    assert len(server.log.bodies) == 1


def test_body_mapping() -> None:
    beams = completion_body("m", TextRequest("p", n=32, beam_search=True, temperature=0.7, stop=("---",)))
    assert beams["n"] == 1 and beams["temperature"] == 0.0  # without the server's beams: greedy
    assert "use_beam_search" not in beams
    greedy = completion_body("m", TextRequest("p", n=4, temperature=0.0))
    assert greedy["n"] == 1 and "seed" not in greedy
    sampled = completion_body(
        "m", TextRequest("p", n=8, max_tokens=9, temperature=1.0, top_k=20, top_p=0.95, stop=("a", "b"), seed=5)
    )
    assert (sampled["n"], sampled["top_k"], sampled["top_p"], sampled["stop"]) == (8, 20, 0.95, ["a", "b"])
    assert (sampled["max_tokens"], sampled["seed"], sampled["prompt"], sampled["logprobs"]) == (9, 5, "p", 1)


def test_text_protocol_on_the_wire(server: OpenAIStandIn) -> None:
    generator = make([server.base_url])
    assert isinstance(generator, TextGenerator)
    prompt = f"Tactic state:\n---\n{STATE}\n---\nNext tactic:\n---\n"
    stopped, cut_short, greedy = complete(
        generator,
        TextRequest(prompt, n=3, max_tokens=32, temperature=1.0, stop=("---",)),
        TextRequest(f"{OTHER}", n=1, max_tokens=1, temperature=1.0, stop=("---",)),
        TextRequest(f"{OTHER}", n=2, max_tokens=8, temperature=0.0),
    )
    # The stop string is cut from the text; the tokens up to and including the one that completed it stay.
    assert [c.text for c in stopped] == ["linarith\n", "field_simp\n", "linarith\n"]
    assert all(c.finish_reason == FinishReason.STOP for c in stopped)
    assert stopped[0].token_logprobs == pytest.approx((-0.2, -0.1, -0.05, -0.05))
    assert stopped[1].logprob == pytest.approx(sum(stopped[1].token_logprobs)) == pytest.approx(-0.9)
    assert cut_short == [Completion("simp", (-0.1,), FinishReason.LENGTH)]
    # Greedy asks the server once and reports the completion n times; it ended by itself (EOS).
    assert len(greedy) == 2 and greedy[0] == greedy[1] and greedy[0].finish_reason == FinishReason.EOS
    assert [b["n"] for b in server.log.bodies] == [3, 1, 1]
    assert [b["max_tokens"] for b in server.log.bodies] == [32, 1, 8]
    assert [b["stop"] for b in server.log.bodies] == [["---"], ["---"], []]


def test_finish_reasons_without_vllm_stop_reason() -> None:
    def choice(text: str, tokens: list[str], reason: str) -> dict[str, Any]:
        logprobs = {"tokens": tokens, "token_logprobs": [-1.0] * len(tokens)}
        return {"text": text, "logprobs": logprobs, "finish_reason": reason}

    reply = {
        "choices": [
            choice("simp", ["simp", "\n---"], "stop"),  # the tokens hold the stop string, the text does not
            choice("simp", ["simp"], "stop"),  # ended by itself
            choice("simp", ["simp"], "length"),
            {"text": "ring", "finish_reason": "stop"},  # no log-probs at all
        ]
    }
    out = parse_completions(reply, 4, ["---"])
    assert [c.finish_reason for c in out] == [
        FinishReason.STOP,
        FinishReason.EOS,
        FinishReason.LENGTH,
        FinishReason.STOP,
    ]
    assert [c.num_tokens for c in out] == [2, 1, 1, 0] and out[0].logprob == -2.0
    with pytest.raises(ValueError, match="token_logprobs"):
        parse_completions({"choices": [{"text": "x", "logprobs": {"token_logprobs": ["a"]}}]}, 1)


def test_build_generator_maps_settings(server: OpenAIStandIn) -> None:
    settings = ModelSettings(
        backend="openai",
        name="served-llemma",
        base_urls=[server.base_url],
        temperature=0.5,
        request_timeout_s=3,
        max_retries=1,
    )
    text = build_text_generator(settings)
    assert isinstance(text, OpenAIGenerator)
    assert text.base_urls == [server.base_url] and text.timeout_s == 3 and text.max_retries == 1
    generator = build_generator(settings)
    assert isinstance(generator, PromptedTacticGenerator) and isinstance(generator.text, OpenAIGenerator)
    (candidates,) = ask(generator, OTHER, samples=2)
    assert candidates[0].text == "simp" and server.log.bodies[0]["model"] == "served-llemma"
    assert server.log.bodies[0]["temperature"] == 0.5 and server.log.bodies[0]["n"] == 2


def test_a_search_seed_reaches_the_text_request_and_the_body(server: OpenAIStandIn) -> None:
    from prover.models.tactics import SeededTacticGenerator

    generator = tactics(make([server.base_url]))
    unseeded = GenerationRequest(ProofState.from_pp(OTHER), 2)
    assert generator.text_request(unseeded).seed is None, "no seed: the backend's own generator"
    assert generator.text_request(GenerationRequest(ProofState.from_pp(OTHER), 2, seed=7)).seed == 7
    with pytest.raises(ValueError, match=r"GenerationRequest\.seed"):
        GenerationRequest(ProofState.from_pp(OTHER), 2, seed=-1)

    async def main() -> None:
        seeded = SeededTacticGenerator(generator, 41)
        await seeded.generate([unseeded, GenerationRequest(ProofState.from_pp(OTHER), 2, seed=3)])
        await seeded.close()  # closes nothing: the generator underneath belongs to the caller
        await generator.generate([unseeded])
        await generator.close()

    asyncio.run(main())
    assert sorted(body.get("seed", -1) for body in server.log.bodies) == [-1, 3, 41]


def test_retry_jitter_draws_from_the_seeded_generator() -> None:
    def delays(generator: OpenAIGenerator) -> list[float]:
        return [generator._random.uniform(0.5, 1.0) for _ in range(4)]

    url = ["http://127.0.0.1:9"]
    assert delays(make(url, seed=5)) == delays(make(url, seed=5)) != delays(make(url, seed=6))
    from_settings = OpenAIGenerator.from_settings(ModelSettings(backend="openai", seed=5))
    assert delays(from_settings) == delays(make(url, seed=5)), "model.seed (--seed) seeds the jitter"


# ---------------------------------------------------------------- beam search (vLLM's `use_beam_search`)

BEAM_TABLE = {
    # The server's beams ignore `stop`: they run past "---" into the next "Tactic state".
    STATE: [
        [("lin", -0.2), ("arith", -0.1), ("\n-", -0.05), ("--", -0.05), ("\nTactic", -1.0), (" state", -1.0)],
        [("nlin", -0.5), ("arith", -0.3), ("\n---", -0.1), ("\nx", -2.0)],
        [("lin", -0.3), ("arith", -0.4), ("\n---", -0.1)],  # the same tactic again, worse: merged away
        [("norm", -0.9), ("_num", -0.3)],  # ends by itself (EOS), no stop
    ],
}


def beam_tactics(text: OpenAIGenerator) -> PromptedTacticGenerator:
    return PromptedTacticGenerator(text, LLEMMA, SamplingConfig(temperature=0.0, max_new_tokens=32))


def test_beam_search_on_a_vllm_server_is_cut_at_the_stop_and_rescored() -> None:
    with OpenAIStandIn(BEAM_TABLE, max_logprobs=8) as server:
        text = make([server.base_url], beam_search="auto")
        (candidates,) = ask(beam_tactics(text), STATE, samples=4)
    (body,) = server.log.bodies
    assert body["use_beam_search"] is True and body["n"] == 4 and body["temperature"] == 0.0
    assert body["logprobs"] == 1, "token log-probs come back to cut the beams by"
    assert text.server_beams is True
    # Each beam scored by the mean log-prob of its kept tokens (through the stop's), best first, unique.
    assert [(c.text, c.num_tokens) for c in candidates] == [("linarith", 4), ("nlinarith", 3), ("norm_num", 2)]
    assert candidates[0].logprob == pytest.approx(-0.4)  # not -2.4: the tokens after the stop are dropped
    assert candidates[1].logprob == pytest.approx(-0.9)
    assert candidates[2].logprob == pytest.approx(-1.2)


def test_parse_beams_trims_like_a_stopping_server() -> None:
    reply = {
        "choices": [
            {
                "text": "simp\n---\nmore",
                "logprobs": {"tokens": ["simp", "\n--", "-", "\nmore"], "token_logprobs": [-1.0, -0.5, -0.25, -3.0]},
                "finish_reason": "length",
            },
            {"text": "ring", "logprobs": {"tokens": ["ring"], "token_logprobs": [-0.5]}, "finish_reason": "length"},
            {"text": "rfl", "logprobs": {"tokens": ["rfl"], "token_logprobs": [-0.5]}, "finish_reason": "stop"},
        ]
    }
    simp, ring, rfl = parse_beams(reply, 3, ["---"])
    assert simp == Completion("simp\n", (-1.0, -0.5, -0.25), FinishReason.STOP)
    assert ring.finish_reason == FinishReason.LENGTH and rfl.finish_reason == FinishReason.EOS
    with pytest.raises(ValueError, match="differ in length"):
        parse_beams({"choices": [{"text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": []}}]}, 1)


@pytest.mark.parametrize("flavour", ["openai", "vllm-default-max-logprobs"])
def test_auto_falls_back_to_greedy_once_and_remembers(flavour: str, caplog: pytest.LogCaptureFixture) -> None:
    # The OpenAI API refuses the unknown field; a vLLM server at its default --max-logprobs (20) refuses 2 x 32.
    stand_in = OpenAIStandIn(BEAM_TABLE, flavour="openai") if flavour == "openai" else OpenAIStandIn(BEAM_TABLE)
    with stand_in as server, caplog.at_level("WARNING", logger="prover.models.openai_backend"):
        text = make([server.base_url], beam_search="auto")
        rows = ask(beam_tactics(text), STATE, STATE, samples=32)
        ask(beam_tactics(text), STATE, samples=32)
    refused, *rest = server.log.statuses
    assert refused == 400 and rest == [200, 200, 200], "asked once, then greedy without asking again"
    assert text.server_beams is False
    assert [b.get("use_beam_search") for b in server.log.bodies] == [True, None, None, None]
    assert all(b["n"] == 1 for b in server.log.bodies[1:])
    assert [len(row) for row in rows] == [1, 1]
    expected = "Unrecognized request argument supplied: use_beam_search" if flavour == "openai" else "max allowed: 20"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(expected in w for w in warnings) and any("decodes greedily" in w for w in warnings)
    assert sum("decodes greedily" in w for w in warnings) == 1, "said once"


def test_beam_search_on_raises_with_the_fix_and_off_never_asks() -> None:
    refused = pytest.raises(GenerationError, match=r"does not offer beam search.*--beam-search off")
    with OpenAIStandIn(BEAM_TABLE, flavour="openai") as server, refused:
        ask(beam_tactics(make([server.base_url], beam_search="on")), STATE, samples=4)
    with OpenAIStandIn(BEAM_TABLE) as server, pytest.raises(GenerationError, match=r"--max-logprobs 64"):
        ask(beam_tactics(make([server.base_url], beam_search="on")), STATE, samples=32)
    with OpenAIStandIn(BEAM_TABLE, max_logprobs=64) as server:
        (candidates,) = ask(beam_tactics(make([server.base_url], beam_search="off")), STATE, samples=4)
        assert "use_beam_search" not in server.log.bodies[0] and server.log.bodies[0]["n"] == 1
        assert [c.text for c in candidates] == ["linarith"]


def test_beam_search_setting_reaches_the_generator() -> None:
    assert ModelSettings().beam_search == "auto"
    generator = OpenAIGenerator.from_settings(ModelSettings(backend="openai", beam_search="off"))
    assert generator.beam_search == "off" and generator.server_beams is False
    assert completion_body("m", TextRequest("p", n=8, beam_search=True), use_beam_search=True)["n"] == 8
    sampled = completion_body("m", TextRequest("p", n=8, temperature=1.0), use_beam_search=True)
    assert "use_beam_search" not in sampled, "only beam-search requests ask for beams"

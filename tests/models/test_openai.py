"""The `openai` backend against a local completions stand-in (real HTTP on 127.0.0.1, real wire format)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("httpx", reason="the openai backend needs httpx (the `openai` extra)")

from lean_env.types import ProofState
from prover.config import ModelSettings
from prover.models import build_generator
from prover.models.base import GenerationError, PromptTooLong, SamplingConfig
from prover.models.openai_backend import OpenAIGenerator, completion_body
from prover.models.prompts import LLEMMA
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
    sampling = SamplingConfig(
        temperature=options.pop("temperature", 0.8), max_new_tokens=32, top_k=options.pop("top_k", 0)
    )
    defaults: dict[str, Any] = {"timeout_s": 2.0, "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}
    defaults.update(options)
    return OpenAIGenerator(model_name="llemma", base_urls=urls, prompt_format=LLEMMA, sampling=sampling, **defaults)


def ask(generator: OpenAIGenerator, *states: str, samples: int = 3) -> list[list[TacticCandidate]]:
    async def main() -> list[list[TacticCandidate]]:
        try:
            requests = [GenerationRequest(ProofState.from_pp(s), samples) for s in states]
            return await asyncio.wait_for(generator.generate(requests), timeout=30)
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
    greedy = completion_body("m", "p", 32, SamplingConfig(temperature=0.0), ["---"])
    assert greedy["n"] == 1 and greedy["temperature"] == 0.0  # beams are not part of the API
    sampled = completion_body("m", "p", 8, SamplingConfig(temperature=1.0, top_k=20, top_p=0.95), ["a", "b"])
    assert (sampled["n"], sampled["top_k"], sampled["top_p"], sampled["stop"]) == (8, 20, 0.95, ["a", "b"])


def test_build_generator_maps_settings(server: OpenAIStandIn) -> None:
    settings = ModelSettings(
        backend="openai",
        name="served-llemma",
        base_urls=[server.base_url],
        temperature=0.5,
        request_timeout_s=3,
        max_retries=1,
    )
    generator = build_generator(settings)
    assert isinstance(generator, OpenAIGenerator)
    assert generator.base_urls == [server.base_url] and generator.timeout_s == 3 and generator.max_retries == 1
    (candidates,) = ask(generator, OTHER, samples=2)
    assert candidates[0].text == "simp" and server.log.bodies[0]["model"] == "served-llemma"

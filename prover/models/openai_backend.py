"""The `openai` backend: any server speaking OpenAI's `/v1/completions` (`vllm serve`, TGI, llama.cpp ...).

Search workers on CPU machines can share remote GPU servers this way. One HTTP request per
text request (`n` samples, `logprobs`, stop strings), all in flight at once over a pooled
`httpx.AsyncClient`; the server does the batching. A request that times out, cannot connect,
gets 429 or 5xx, or gets a malformed reply is retried with exponential backoff (honouring
`Retry-After`), each attempt on the next base URL in rotation. Other 4xx replies raise at once.

A completion's token log-probs are the server's `logprobs.token_logprobs` (empty when the server
sends none), its finish reason the server's `finish_reason`: `length`, or `stop`, which the OpenAI
API uses for both a stop string and EOS; vLLM's `stop_reason` (the stop string, or None for EOS)
tells them apart; without it, a completion whose tokens hold a stop string its text lacks counts
as stopped by it, and one without tokens as stopped by a stop string when the request had any.
A greedy or beam-search request asks for one completion (greedy decoding; more would be
identical, and beam search is not part of the OpenAI API) and gets it `n` times, or once for
beam search.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Sequence
from typing import Any

import httpx

from prover.config import ModelSettings
from prover.models.base import GenerationError, PromptTooLong, find_stop
from prover.models.text import Completion, FinishReason, TextRequest

logger = logging.getLogger(__name__)

_CONTEXT_MARKERS = ("maximum context length", "context length", "too long", "context_length_exceeded")


class _Retryable(Exception):
    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


def completion_body(model: str, request: TextRequest) -> dict[str, Any]:
    """The JSON body of the `/v1/completions` request for `request`."""
    one = request.beam_search or request.temperature == 0
    body: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt,
        "n": 1 if one else request.n,
        "max_tokens": request.max_tokens,
        "temperature": 0.0 if request.beam_search else request.temperature,
        "top_p": request.top_p,
        "logprobs": 1,
        "stop": list(request.stop),
    }
    if request.top_k > 0:
        body["top_k"] = request.top_k  # a vLLM extension; left out when off so strict servers accept the body
    if request.seed is not None:
        body["seed"] = request.seed
    return body


def _token_logprobs(choice: dict[str, Any]) -> tuple[float, ...]:
    logprobs = choice.get("logprobs")
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if values is None:
        return ()
    if not isinstance(values, list) or not all(v is None or isinstance(v, int | float) for v in values):
        raise ValueError("`logprobs.token_logprobs` is not a list of numbers")
    return tuple(0.0 if value is None else float(value) for value in values)


def _finish_reason(choice: dict[str, Any], stops: Sequence[str]) -> FinishReason:
    reason = choice.get("finish_reason")
    if reason == "length":
        return FinishReason.LENGTH
    if reason not in (None, "stop", "eos"):
        raise ValueError(f"unknown finish_reason {reason!r}")
    if "stop_reason" in choice:  # vLLM: the stop string that ended it, a stop token id, or None for EOS
        return FinishReason.STOP if isinstance(choice["stop_reason"], str) else FinishReason.EOS
    logprobs = choice.get("logprobs")
    tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
    if isinstance(tokens, list) and all(isinstance(token, str) for token in tokens):
        generated = "".join(tokens)
        if find_stop(generated, stops) is not None and find_stop(choice["text"], stops) is None:
            return FinishReason.STOP
        return FinishReason.EOS
    return FinishReason.STOP if stops else FinishReason.EOS


def parse_completions(data: Any, expected: int, stops: Sequence[str] = ()) -> list[Completion]:
    """The completions in a `/v1/completions` reply; raises `ValueError` if the reply is malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise ValueError("reply has no `choices` list")
    choices = data["choices"]
    if not choices or len(choices) > expected:
        raise ValueError(f"reply has {len(choices)} choices for n={expected}")
    out: list[Completion] = []
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("text"), str):
            raise ValueError("a choice has no `text`")
        out.append(Completion(choice["text"], _token_logprobs(choice), _finish_reason(choice, stops)))
    return out


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        if isinstance(data.get("message"), str):
            return str(data["message"])[:300]
    return str(data)[:300]


class OpenAIGenerator:
    """A `TextGenerator` over OpenAI-compatible completion servers (see the module docstring)."""

    def __init__(
        self,
        *,
        model_name: str,
        base_urls: Sequence[str],
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int = 0,
    ) -> None:
        if not base_urls:
            raise ValueError("OpenAIGenerator.base_urls: give at least one server URL")
        self.model_name = model_name
        self.base_urls = [url.rstrip("/") for url in base_urls]
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.requests_sent = 0
        self.retries = 0
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._rotation = itertools.cycle(range(len(self.base_urls)))
        self._random = random.Random(seed)  # backoff jitter

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> OpenAIGenerator:
        return cls(
            model_name=settings.name,
            base_urls=settings.base_urls,
            api_key=settings.api_key,
            timeout_s=settings.request_timeout_s,
            max_retries=settings.max_retries,
            seed=settings.seed,
        )

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        """Completions per request, in order; all requests are in flight at once.

        A context-length refusal raises `PromptTooLong` naming the requests at fault.
        """
        if not requests:
            return []
        client = self._ensure_client()
        tasks = [self._one(client, request) for request in requests]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for index, result in enumerate(results):
            if isinstance(result, PromptTooLong):
                raise PromptTooLong(str(result), indices=[index]) from result
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [result for result in results if not isinstance(result, BaseException)]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _ensure_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Pooled connections belong to the loop that opened them.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s),
                limits=self._limits,
                headers=self._headers,
                transport=self._transport,
            )
            self._client_loop = loop
        return self._client

    async def _one(self, client: httpx.AsyncClient, request: TextRequest) -> list[Completion]:
        completions = await self._post(client, completion_body(self.model_name, request), request.stop)
        if request.greedy and request.n > 1:
            return completions[:1] * request.n  # asked once; the others would be identical
        return completions

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any], stops: Sequence[str]) -> list[Completion]:
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            url = self.base_urls[next(self._rotation)] + "/completions"
            try:
                return await self._attempt(client, url, body, stops)
            except _Retryable as error:
                last = f"{url}: {error}"
                if attempt == self.max_retries:
                    break
                self.retries += 1
                delay = error.delay
                if delay is None:
                    delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * self._random.uniform(0.5, 1.0)
                logger.info("completions request failed (%s); retrying in %.2f s", last, delay)
                await asyncio.sleep(delay)
        raise GenerationError(
            f"completions request for model {self.model_name!r} failed after {self.max_retries + 1} attempt(s); "
            f"last error: {last}"
        )

    async def _attempt(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any], stops: Sequence[str]
    ) -> list[Completion]:
        self.requests_sent += 1
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException as error:
            raise _Retryable(f"timed out after {self.timeout_s:g} s ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise _Retryable(f"{type(error).__name__}: {error}") from error
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {_error_message(response)}", delay=_retry_after(response))
        if status >= 400:
            message = _error_message(response)
            if status == 400 and any(marker in message.lower() for marker in _CONTEXT_MARKERS):
                raise PromptTooLong(f"model {self.model_name!r} at {url}: the prompt does not fit: {message}")
            raise GenerationError(f"{url} answered HTTP {status}: {message}")
        try:
            return parse_completions(response.json(), body["n"], stops)
        except ValueError as error:  # includes JSON decode errors
            raise _Retryable(f"malformed reply: {error}") from error

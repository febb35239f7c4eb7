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
A greedy request asks for one completion (more would be identical) and gets it `n` times.

Beam search is not part of the OpenAI API; vLLM's server extends `/v1/completions` with
`use_beam_search: true`, `n` being the beam width (`CompletionRequest.use_beam_search` in
`vllm/entrypoints/openai/protocol.py`, served by `OpenAIServing.beam_search`). Its beams ignore
`stop` (`to_beam_search_params` passes none on) and run to EOS or `max_tokens`, and each step asks
the engine for 2n log-probs, so the server needs `--max-logprobs` of at least 2n (its default is
20). A beam-search request therefore asks for `logprobs: 1`, cuts every beam here at its first stop
string, keeps the log-probs of the tokens up to and including the one that completed it, and lets
candidates be ranked by their mean (`finalize_candidates` merges beams that cut to the same text).
`beam_search` says when to ask: `on` always (a server that refuses raises `GenerationError` with
the fix), `off` never, `auto` tries once and remembers the answer. A server without the extension
either refuses the field (the OpenAI API: 400 "Unrecognized request argument supplied:
use_beam_search") or, like servers that ignore unknown fields, answers with ordinary completions,
which are used as they come. Without beams a beam-search request decodes greedily: one candidate
instead of `n`, said once in a log warning.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

import httpx

from prover.config import ModelSettings
from prover.http_headers import retry_after
from prover.models.base import GenerationError, PromptTooLong, find_stop
from prover.models.text import Completion, FinishReason, TextRequest

logger = logging.getLogger(__name__)

_CONTEXT_MARKERS = ("maximum context length", "context length", "too long", "context_length_exceeded")


class _Retryable(Exception):
    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class _Refused(GenerationError):
    """A 4xx answer other than a context-length refusal: not retried."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


BeamMode = Literal["auto", "on", "off"]


def _refuses_beam_search(error: _Refused) -> bool:
    """Whether a refusal says the server does not know `use_beam_search` (OpenAI's 400, a strict 422)."""
    return error.status in (400, 422) and "use_beam_search" in error.reason


def _lacks_logprobs(error: _Refused) -> bool:
    """Whether a refusal is vLLM's for more log-probs per token than its `--max-logprobs`."""
    return error.status == 400 and "greater than max allowed" in error.reason


def completion_body(model: str, request: TextRequest, *, use_beam_search: bool = False) -> dict[str, Any]:
    """The JSON body of the `/v1/completions` request for `request`.

    With `use_beam_search` (only for a beam-search request) the body asks for vLLM's beam search of
    width `n`; otherwise a greedy or beam-search request asks for one greedy completion.
    """
    beams = use_beam_search and request.beam_search
    one = not beams and (request.beam_search or request.temperature == 0)
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
    if beams:
        body["use_beam_search"] = True  # a vLLM extension, sent only where asked for
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
    return [
        Completion(choice["text"], _token_logprobs(choice), _finish_reason(choice, stops))
        for choice in _choices(data, expected)
    ]


def _choices(data: Any, expected: int) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise ValueError("reply has no `choices` list")
    choices = data["choices"]
    if not choices or len(choices) > expected:
        raise ValueError(f"reply has {len(choices)} choices for n={expected}")
    if not all(isinstance(choice, dict) and isinstance(choice.get("text"), str) for choice in choices):
        raise ValueError("a choice has no `text`")
    return choices


def parse_beams(data: Any, expected: int, stops: Sequence[str] = ()) -> list[Completion]:
    """The beams of a beam-search reply, each cut at its first stop string (the server's beams ignore
    `stop`): the text before it, the log-probs of the tokens up to and including the one that
    completed it. Raises `ValueError` if the reply is malformed."""
    out: list[Completion] = []
    for choice in _choices(data, expected):
        logprobs = _token_logprobs(choice)
        block = choice.get("logprobs")
        tokens = block.get("tokens") if isinstance(block, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            tokens = None
        if tokens is not None and len(tokens) != len(logprobs):
            raise ValueError("`logprobs.tokens` and `logprobs.token_logprobs` differ in length")
        text = choice["text"]
        cut = find_stop(text, stops)
        kept = len(logprobs) if cut is None or tokens is None else _tokens_through_stop(tokens, stops)
        # A server that ignored `use_beam_search` applied `stop` itself: its finish reason says why.
        reason = FinishReason.STOP if cut is not None else _finish_reason(choice, stops)
        out.append(Completion(text if cut is None else text[:cut], logprobs[:kept], reason))
    return out


def _tokens_through_stop(tokens: Sequence[str], stops: Sequence[str]) -> int:
    """How many of `tokens` it takes for their text to hold a stop string; all of them if it never does."""
    generated = "".join(tokens)
    ends = [index + len(stop) for stop in stops if stop and (index := generated.find(stop)) >= 0]
    if not ends:
        return len(tokens)
    # The first prefix that holds a stop string is the first whose text reaches the earliest stop's end.
    return bisect.bisect_left(list(itertools.accumulate(map(len, tokens))), min(ends)) + 1


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
    """A `TextGenerator` over OpenAI-compatible completion servers (see the module docstring).

    `beam_search` (`auto`, `on`, `off`) says whether beam-search requests ask the server for beams;
    `server_beams` is what is known: True or False once decided, None while `auto` has not asked.
    """

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
        beam_search: BeamMode = "auto",
    ) -> None:
        if not base_urls:
            raise ValueError("OpenAIGenerator.base_urls: give at least one server URL")
        if beam_search not in ("auto", "on", "off"):
            raise ValueError(f"OpenAIGenerator.beam_search: auto, on or off, got {beam_search!r}")
        self.beam_search: BeamMode = beam_search
        self.server_beams: bool | None = {"auto": None, "on": True, "off": False}[beam_search]
        self._greedy_warned = False
        self._probe: asyncio.Lock | None = None
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
            beam_search=settings.beam_search,
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
            self._probe = asyncio.Lock()  # locks, too, belong to one loop
        return self._client

    async def _one(self, client: httpx.AsyncClient, request: TextRequest) -> list[Completion]:
        if request.beam_search and self.server_beams is not False:
            beams = await self._beams(client, request)
            if beams is not None:
                return beams
        if request.beam_search:
            self._warn_greedy(request.n)
        completions = await self._post(client, completion_body(self.model_name, request), self._parser(request.stop))
        if request.greedy and request.n > 1:
            return completions[:1] * request.n  # asked once; the others would be identical
        return completions

    async def _beams(self, client: httpx.AsyncClient, request: TextRequest) -> list[Completion] | None:
        """The server's beams for `request`, or None when `auto` learns that the server has none."""
        if self.server_beams is None and self._probe is not None:
            async with self._probe:  # the first request asks; the others wait for its answer
                if self.server_beams is None:
                    return await self._ask_beams(client, request)
        if self.server_beams is False:
            return None
        return await self._ask_beams(client, request)

    async def _ask_beams(self, client: httpx.AsyncClient, request: TextRequest) -> list[Completion] | None:
        body = completion_body(self.model_name, request, use_beam_search=True)
        try:
            beams = await self._post(client, body, lambda data, n: parse_beams(data, n, request.stop))
        except _Refused as error:
            if _refuses_beam_search(error):
                why = "the server does not offer beam search (vLLM's `use_beam_search`)"
                fix = "use a vLLM server, or --beam-search off"
            elif _lacks_logprobs(error):
                why = f"the server's --max-logprobs is below 2 x the beam width {request.n}"
                fix = f"restart `vllm serve` with --max-logprobs {2 * request.n}"
            else:
                raise
            if self.beam_search == "on":
                raise GenerationError(f"--beam-search on: {why} ({error.reason}); {fix}") from error
            logger.warning("beam search is off for model %r: %s (%s); %s", self.model_name, why, error.reason, fix)
            self.server_beams = False
            return None
        if self.server_beams is None:
            logger.info("the server of model %r offers beam search: using it at temperature 0", self.model_name)
            self.server_beams = True
        return beams

    def _warn_greedy(self, n: int) -> None:
        if self._greedy_warned or n <= 1:
            return
        self._greedy_warned = True
        logger.warning(
            "model %r: no beam search (--beam-search %s): temperature 0 decodes greedily, one candidate per "
            "expansion instead of %d; pass --temperature (e.g. 1.0) to sample them",
            self.model_name,
            self.beam_search,
            n,
        )

    @staticmethod
    def _parser(stops: Sequence[str]) -> Callable[[Any, int], list[Completion]]:
        return lambda data, n: parse_completions(data, n, stops)

    async def _post(
        self, client: httpx.AsyncClient, body: dict[str, Any], parse: Callable[[Any, int], list[Completion]]
    ) -> list[Completion]:
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            url = self.base_urls[next(self._rotation)] + "/completions"
            try:
                return await self._attempt(client, url, body, parse)
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
        self,
        client: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        parse: Callable[[Any, int], list[Completion]],
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
            raise _Retryable(f"HTTP {status}: {_error_message(response)}", delay=retry_after(response))
        if status >= 400:
            message = _error_message(response)
            if status == 400 and any(marker in message.lower() for marker in _CONTEXT_MARKERS):
                raise PromptTooLong(f"model {self.model_name!r} at {url}: the prompt does not fit: {message}")
            raise _Refused(f"{url} answered HTTP {status}: {message}", status, message)
        try:
            return parse(response.json(), body["n"])
        except ValueError as error:  # includes JSON decode errors
            raise _Retryable(f"malformed reply: {error}") from error

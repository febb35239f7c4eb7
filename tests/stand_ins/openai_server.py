"""A local stand-in for an OpenAI-compatible completions server (`vllm serve` and the like).

It listens on 127.0.0.1 only, on a free port, in a background thread, and answers
`POST /v1/completions` in the real wire format: `choices[i].text`, `choices[i].logprobs` with
`tokens` / `token_logprobs` / `top_logprobs` / `text_offset`, `finish_reason` (`stop` for a stop
string and for a completion that ended by itself, `length`), vLLM's `stop_reason` (the stop
string, else null), `usage`. Like vLLM it applies `stop`: the text ends before the stop string,
while the tokens (and their log-probs) run up to and including the token that completed it.

Completions come from `table`: the first key found in the prompt gives the list of completions to
cycle through, each a list of token strings with their log-probs. Failures are injected with
`fail_next(*faults)`: an HTTP status (429 with `Retry-After: 0`, 500, 503 ...), `"malformed"`
(200 with a body that is not JSON), `"no_choices"` (200 with JSON lacking `choices`), `"hang"`
(answer after `hang_s`), or `"context"` (400 with vLLM's context-length message). `latency_s`
delays every answer; `max_in_flight` records how many requests were ever served at once.

`flavour` picks the server. `"vllm"` (the default) speaks vLLM's extension `use_beam_search: true`
(`CompletionRequest.use_beam_search`, `vllm/entrypoints/openai/protocol.py`): the first `n`
completions of the table entry are the beams, run to their end or `max_tokens` ignoring `stop`
(the server's `to_beam_search_params` passes no stop strings on), the text is the whole beam, and
the log-probs are per token; like vLLM, whose beam search asks the engine for 2n log-probs per step,
it answers 400 "Requested sample logprobs of 2n, which is greater than max allowed: M" when 2n
exceeds `max_logprobs` (vLLM's `--max-logprobs`, default 20). vLLM ignores other unknown fields.
`"openai"` is the OpenAI API, which refuses any field it does not know with 400 "Unrecognized
request argument supplied: <field>" (type `invalid_request_error`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Completion = Sequence[tuple[str, float]]
"""One completion: (token text, log-prob) pairs."""

Fault = int | str

OPENAI_COMPLETION_FIELDS = frozenset(
    {
        "model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options",
        "logprobs", "echo", "stop", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "user",
        "seed",
    }
)  # fmt: skip
"""The request fields of OpenAI's `/v1/completions` (its API reference)."""


@dataclass
class ServerLog:
    bodies: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


class OpenAIStandIn:
    """Start with `with OpenAIStandIn(table) as server:`; `server.base_url` ends with `/v1`."""

    def __init__(
        self,
        table: Mapping[str, Sequence[Completion]],
        *,
        model: str = "stand-in-model",
        hang_s: float = 2.0,
        latency_s: float = 0.0,
        flavour: Literal["vllm", "openai"] = "vllm",
        max_logprobs: int = 20,
    ) -> None:
        self.table = table
        self.flavour = flavour
        self.max_logprobs = max_logprobs
        self.model = model
        self.hang_s = hang_s
        self.latency_s = latency_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.log = ServerLog()
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-stand-in", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def __enter__(self) -> OpenAIStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ replies

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _completions(self, prompt: str, n: int) -> list[Completion]:
        for key, completions in self.table.items():
            if key in prompt:
                with self._lock:
                    start = self._counter
                    self._counter += n
                return [completions[(start + i) % len(completions)] for i in range(n)]
        return [[("sorry", -9.0)] for _ in range(n)]

    def _beams(self, prompt: str, n: int) -> list[Completion]:
        for key, completions in self.table.items():
            if key in prompt:
                return list(completions[:n])
        return [[("sorry", -9.0)]]

    def refusal(self, body: dict[str, Any]) -> str | None:
        """The 400 message this flavour answers `body` with, or None if it accepts it."""
        if self.flavour == "openai":
            unknown = sorted(set(body) - OPENAI_COMPLETION_FIELDS)
            return f"Unrecognized request argument supplied: {unknown[0]}" if unknown else None
        if body.get("use_beam_search") and 2 * int(body.get("n", 1)) > self.max_logprobs:
            n = 2 * int(body.get("n", 1))
            return f"Requested sample logprobs of {n}, which is greater than max allowed: {self.max_logprobs}"
        return None

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON reply to a well-formed, accepted request `body`."""
        n = int(body.get("n", 1))
        max_tokens = int(body.get("max_tokens", 16))
        beams = bool(body.get("use_beam_search")) and self.flavour == "vllm"
        stops = [] if beams else body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        chosen = self._beams(str(body["prompt"]), n) if beams else self._completions(str(body["prompt"]), n)
        choices: list[dict[str, Any]] = []
        for index, completion in enumerate(chosen):
            tokens: list[str] = []
            logprobs: list[float] = []
            text = ""
            finish = "length"
            stop_reason: str | None = None
            for token, logprob in completion[:max_tokens]:
                tokens.append(token)
                logprobs.append(logprob)
                text += token
                hits = sorted((text.find(stop), stop) for stop in stops if stop in text)
                if hits:
                    text = text[: hits[0][0]]
                    finish, stop_reason = "stop", hits[0][1]
                    break
            else:
                if len(completion) <= max_tokens:
                    finish = "stop"  # the completion ended by itself (EOS)
            offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
            choices.append(
                {
                    "index": index,
                    "text": text,
                    "logprobs": {
                        "tokens": tokens,
                        "token_logprobs": logprobs,
                        "top_logprobs": [{t: lp} for t, lp in zip(tokens, logprobs, strict=True)],
                        "text_offset": offsets,
                    },
                    "finish_reason": finish,
                    "stop_reason": stop_reason,
                }
            )
        completion_tokens = sum(len(c["logprobs"]["tokens"]) for c in choices)
        return {
            "id": f"cmpl-{time.monotonic_ns()}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": choices,
            "usage": {
                "prompt_tokens": len(str(body["prompt"]).split()),
                "completion_tokens": completion_tokens,
                "total_tokens": completion_tokens + len(str(body["prompt"]).split()),
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, status: int, payload: bytes, headers: Mapping[str, str] | None = None) -> None:
                stand_in.log.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _error(self, status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> None:
                body = {"error": {"message": message, "type": kind, "code": status}}
                self._send(status, json.dumps(body).encode(), headers)

            def do_POST(self) -> None:
                with stand_in._lock:
                    stand_in.in_flight += 1
                    stand_in.max_in_flight = max(stand_in.max_in_flight, stand_in.in_flight)
                try:
                    if stand_in.latency_s:
                        time.sleep(stand_in.latency_s)
                    self._answer()
                finally:
                    with stand_in._lock:
                        stand_in.in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                stand_in.log.paths.append(self.path)
                stand_in.log.headers.append({k.lower(): v for k, v in self.headers.items()})
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._error(400, "request body is not JSON", "invalid_request_error")
                    return
                stand_in.log.bodies.append(body)
                if self.path != "/v1/completions":
                    self._error(404, f"no route {self.path}", "not_found")
                    return
                fault = stand_in._next_fault()
                if fault == "hang":
                    time.sleep(stand_in.hang_s)
                    fault = None
                if fault == 429:
                    self._error(429, "rate limit reached", "rate_limit_exceeded", {"Retry-After": "0"})
                elif isinstance(fault, int):
                    self._error(fault, "internal server error", "server_error")
                elif fault == "malformed":
                    self._send(200, b"{not json")
                elif fault == "no_choices":
                    self._send(200, json.dumps({"id": "x", "object": "text_completion"}).encode())
                elif fault == "context":
                    self._error(
                        400,
                        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
                        "BadRequestError",
                    )
                elif "prompt" not in body or "model" not in body:
                    self._error(400, "`model` and `prompt` are required", "invalid_request_error")
                elif (refusal := stand_in.refusal(body)) is not None:
                    kind = "invalid_request_error" if stand_in.flavour == "openai" else "BadRequestError"
                    self._error(400, refusal, kind)
                else:
                    self._send(200, json.dumps(stand_in.reply(body)).encode())

        return Handler

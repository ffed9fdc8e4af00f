"""`LLMClient`: the one way paperlab talks to language models.

It wraps the official `openai` SDK (`AsyncOpenAI(base_url=...)`), so it works with any
OpenAI-compatible server: vLLM, SGLang, Ollama, llama.cpp, a hosted API, or `paperlab serve`.
What it adds:

- a concurrency limit per configured model (an `asyncio.Semaphore`);
- transport retries with exponential backoff on 429 / 5xx / dropped connections (the SDK's own
  `max_retries`), and on malformed response bodies (tenacity);
- parse-level retries: `parse=fn` regenerates an output `fn` rejects (returns None or raises
  ValueError), up to `parse_retries` more times, sampling at temperature >= 0.7 (a greedy
  retry would repeat the rejected output); each attempt is its own cache entry, so a re-run
  replays the same attempts for free;
- a persistent SQLite cache (`RequestCache`) keyed by (endpoint, model, messages or prompt,
  parameters, sample index, attempt); errors are never cached;
- token and cost accounting per model (`client.usage`);
- errors as one line naming the model and the fix, with any API key scrubbed out.

    client = LLMClient(load_config("paperlab.toml"))
    out = asyncio.run(client.chat("llama3", [{"role": "user", "content": "Hi"}]))
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import openai
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from paperlab.core.errors import UserError
from paperlab.core.llm.cache import RequestCache, request_key
from paperlab.core.llm.config import LLMConfig, ModelSpec
from paperlab.core.llm.usage import UsageTracker

T = TypeVar("T")

Messages = Sequence[Mapping[str, str]]
RETRY_TEMPERATURE = 0.7  # parse retries sample at least this hot: greedy would repeat itself


class EndpointError(UserError):
    """The endpoint failed after retries (unreachable, auth, bad request): one line."""


class MalformedResponse(Exception):
    """A response body that is not the JSON the API promises (retried)."""


@dataclass
class TokenLogprob:
    token: str
    logprob: float | None  # None for the first prompt token (nothing to condition on)
    top: list[tuple[str, float]] = field(default_factory=list)  # best first; byte tokens
    # can share a string (invalid UTF-8 -> U+FFFD), so this is a list, not a dict


@dataclass
class Completion:
    """One generated output and what it cost."""

    text: str
    model: str  # the config's name for the model
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None  # of the generated tokens
    prompt_logprobs: list[TokenLogprob] | None = None  # raw completions with echo=True
    cached: bool = False
    latency: float = 0.0  # seconds, 0 for a cache hit
    cost: float = 0.0  # USD, 0 for a cache hit
    parsed: Any = None  # parse(text) when a parser was given and accepted the output
    attempts: int = 1

    def to_cache(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("cached", "latency", "cost", "parsed", "attempts", "model"):
            d.pop(k)
        return d

    @classmethod
    def from_cache(cls, d: Mapping[str, Any], model: str) -> Completion:
        d = dict(d)
        for k in ("logprobs", "prompt_logprobs"):
            if d.get(k) is not None:
                d[k] = [
                    TokenLogprob(t["token"], t["logprob"], [tuple(a) for a in t["top"]])
                    for t in d[k]
                ]
        return cls(model=model, cached=True, **d)


def scrub(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s and s != "EMPTY":
            text = text.replace(s, "***")
    return text


class LLMClient:
    """Chat and raw completions against the models of an `LLMConfig`.

    `cache`: a `RequestCache`, a path for one, or None (no caching). Use one client per run;
    `usage` accumulates over its lifetime. Safe to use from several `asyncio.run` calls.
    """

    def __init__(
        self,
        config: LLMConfig,
        *,
        cache: RequestCache | str | os.PathLike | None = None,
        usage: UsageTracker | None = None,
    ):
        self.config = config
        self.cache = RequestCache(cache) if isinstance(cache, str | os.PathLike) else cache
        self.usage = usage or UsageTracker()
        self._sdk: dict[tuple[int, str], openai.AsyncOpenAI] = {}
        self._limits: dict[tuple[int, str], asyncio.Semaphore] = {}
        self._secrets: set[str] = set()

    # -- public API ---------------------------------------------------------------------------

    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        sample: int = 0,
        parse: Callable[[str], Any] | None = None,
        parse_retries: int = 2,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One chat completion. `sample` distinguishes repeated samples of the same request
        (cache key); `logprobs=k` asks for the top-k log-probabilities of each output token.
        `extra_body` adds fields the OpenAI API does not define but a server reads (vLLM's
        ``repetition_penalty``, ``top_k``); they are part of the cache key."""
        spec = self.config.get(model)
        spec.require("chat")
        if logprobs is not None:
            spec.require("logprobs")
        params = _sampling(temperature, max_tokens, top_p, stop, seed, extra_body)
        if logprobs is not None:
            params["logprobs"] = True
            params["top_logprobs"] = logprobs
        body = {"messages": [dict(m) for m in messages]}
        return await self._with_parse(spec, "chat", body, params, sample, parse, parse_retries)

    async def complete(
        self,
        model: str,
        prompt: str,
        *,
        temperature: float = 0.7,
        max_tokens: int = 256,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        echo: bool = False,
        sample: int = 0,
        parse: Callable[[str], Any] | None = None,
        parse_retries: int = 2,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Completion:
        """A raw completion of `prompt` (no chat template). `echo=True` with `logprobs` also
        returns the prompt's token log-probabilities (`prompt_logprobs` capability);
        `extra_body` as in `chat`."""
        spec = self.config.get(model)
        spec.require("raw_completion")
        if logprobs is not None:
            spec.require("logprobs")
        if echo:
            spec.require("prompt_logprobs")
        params = _sampling(temperature, max_tokens, top_p, stop, seed, extra_body)
        if logprobs is not None:
            params["logprobs"] = logprobs
        if echo:
            params["echo"] = True
            params.setdefault("logprobs", 0)
        body = {"prompt": prompt}
        return await self._with_parse(
            spec, "completion", body, params, sample, parse, parse_retries
        )

    async def aclose(self) -> None:
        """Close the connections opened in the running event loop (each loop gets its own:
        those of a loop that has ended cannot be closed from another one)."""
        loop = id(asyncio.get_running_loop())
        for key in [k for k in self._sdk if k[0] == loop]:
            await self._sdk.pop(key).close()
            self._limits.pop(key, None)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``asyncio.run(coro)``, then this client's connections of that loop are closed in
        it. Use it instead of a bare ``asyncio.run`` when the client outlives the call: an
        open connection of an ended loop, garbage-collected later while another loop runs,
        fails there ("Event loop is closed")."""

        async def main() -> T:
            try:
                return await coro
            finally:
                await self.aclose()

        return asyncio.run(main())

    # -- internals ----------------------------------------------------------------------------

    async def _with_parse(self, spec, kind, body, params, sample, parse, parse_retries):
        for attempt in range(parse_retries + 1 if parse else 1):
            out = await self._cached(spec, kind, body, params, sample, attempt)
            out.attempts = attempt + 1
            if parse is None:
                return out
            try:
                parsed = parse(out.text)
            except ValueError:
                parsed = None
            if parsed is not None:
                out.parsed = parsed
                return out
        return out  # every attempt unparseable: parsed stays None, the caller decides

    async def _cached(self, spec: ModelSpec, kind, body, params, sample, attempt) -> Completion:
        key = None
        if self.cache is not None:
            payload = {
                "base_url": spec.base_url,
                "model": spec.model,
                "kind": kind,
                **body,
                "params": params,
                "sample": sample,
            }
            if attempt:
                payload["attempt"] = attempt
            key = request_key(payload)
            hit = self.cache.get(key)
            if hit is not None:
                out = Completion.from_cache(hit, spec.name)
                self.usage.record(
                    spec.name,
                    prompt_tokens=out.prompt_tokens,
                    completion_tokens=out.completion_tokens,
                    cost=0.0,
                    seconds=0.0,
                    cached=True,
                )
                return out
        if attempt:  # a regenerated attempt must be allowed to differ from the rejected one
            params = {**params, "temperature": max(params["temperature"], RETRY_TEMPERATURE)}
            if "seed" in params:
                params["seed"] += 7919 * attempt
        out = await self._request(spec, kind, body, params)
        self.usage.record(
            spec.name,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            cost=out.cost,
            seconds=out.latency,
            cached=False,
        )
        if key is not None:
            self.cache.put(key, out.to_cache())
        return out

    def _sdk_for(self, spec: ModelSpec) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        loop = id(asyncio.get_running_loop())
        if (loop, spec.name) not in self._sdk:
            api_key = spec.api_key()
            self._secrets.add(api_key)
            self._sdk[loop, spec.name] = openai.AsyncOpenAI(
                base_url=spec.base_url,
                api_key=api_key,
                timeout=spec.timeout,
                max_retries=spec.max_retries,
            )
            self._limits[loop, spec.name] = asyncio.Semaphore(spec.max_concurrency)
        return self._sdk[loop, spec.name], self._limits[loop, spec.name]

    async def _request(self, spec: ModelSpec, kind, body, params) -> Completion:
        sdk, limit = self._sdk_for(spec)
        call = sdk.chat.completions.create if kind == "chat" else sdk.completions.create
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(MalformedResponse),
            stop=stop_after_attempt(spec.max_retries + 1),
            wait=wait_exponential(multiplier=0.25, max=8),
            reraise=True,
        )
        async with limit:
            start = time.perf_counter()
            try:
                async for attempt in retrying:
                    with attempt:
                        try:
                            response = await call(model=spec.model, **body, **params)
                        except (json.JSONDecodeError, openai.APIResponseValidationError) as e:
                            raise MalformedResponse(str(e)) from None
                        out = _to_completion(response, spec.name, kind)
            except MalformedResponse as e:
                raise self._error(spec, f"malformed response after retries ({e})") from None
            except openai.AuthenticationError:
                raise self._error(
                    spec, f"authentication failed (HTTP 401); check the key in ${spec.api_key_env}"
                ) from None
            except (openai.APIConnectionError, openai.APITimeoutError) as e:
                raise self._error(
                    spec,
                    f"endpoint unreachable after {spec.max_retries} retries ({e}); "
                    "is the server running and base_url right?",
                ) from None
            except openai.APIStatusError as e:
                raise self._error(spec, f"HTTP {e.status_code}: {_brief(e)}") from None
            out.latency = time.perf_counter() - start
        out.cost = spec.cost(out.prompt_tokens, out.completion_tokens)
        return out

    def _error(self, spec: ModelSpec, what: str) -> EndpointError:
        return EndpointError(
            scrub(f"model {spec.name!r} at {spec.base_url}: {what}", sorted(self._secrets))
        )


def _sampling(temperature, max_tokens, top_p, stop, seed, extra_body=None) -> dict[str, Any]:
    """The request parameters both endpoints share; unset ones are left out (and out of the
    cache key). `extra_body` goes to the SDK's parameter of that name (sent as body fields)."""
    params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
    if top_p is not None:
        params["top_p"] = top_p
    if stop:
        params["stop"] = list(stop)
    if seed is not None:
        params["seed"] = seed
    if extra_body:
        if not isinstance(extra_body, Mapping):
            raise TypeError(f"extra_body must be a mapping, got {type(extra_body).__name__}")
        params["extra_body"] = dict(extra_body)
    return params


def _brief(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, Mapping):
        msg = body.get("message") or body.get("error", {})
        if isinstance(msg, Mapping):
            msg = msg.get("message")
        if msg:
            return str(msg)[:300]
    return str(e.message)[:300]


def _to_completion(response: Any, name: str, kind: str) -> Completion:
    """The SDK's response object -> Completion; a response missing its fields is malformed."""
    try:
        choice = response.choices[0]
        usage = response.usage
        if kind == "chat":
            text = choice.message.content or ""
            logprobs = None
            if choice.logprobs is not None and choice.logprobs.content is not None:
                logprobs = [
                    TokenLogprob(t.token, t.logprob, [(a.token, a.logprob) for a in t.top_logprobs])
                    for t in choice.logprobs.content
                ]
            return Completion(
                text,
                name,
                usage.prompt_tokens,
                usage.completion_tokens,
                choice.finish_reason,
                logprobs,
            )
        text = choice.text
        logprobs = prompt_logprobs = None
        lp = choice.logprobs
        if lp is not None and lp.tokens is not None:
            tops = lp.top_logprobs or [None] * len(lp.tokens)
            toks = [
                TokenLogprob(t, p, sorted((top or {}).items(), key=lambda kv: -kv[1]))
                for t, p, top in zip(lp.tokens, lp.token_logprobs, tops, strict=True)
            ]
            n_gen = usage.completion_tokens
            split = len(toks) - n_gen if len(toks) > n_gen else 0
            prompt_logprobs, logprobs = (toks[:split] or None), toks[split:]
        return Completion(
            text,
            name,
            usage.prompt_tokens,
            usage.completion_tokens,
            choice.finish_reason,
            logprobs,
            prompt_logprobs,
        )
    except (AttributeError, IndexError, TypeError) as e:
        raise MalformedResponse(f"unexpected response shape: {e}") from None

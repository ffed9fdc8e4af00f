"""`paperlab serve`: paperlab chat models behind an OpenAI-compatible HTTP API.

FastAPI + uvicorn. Endpoints: `GET /v1/models` and `/v1/models/{id}`, `POST /v1/chat/completions`
(messages through the model's chat template; `logprobs` / `top_logprobs`), `POST
/v1/completions` (a raw prompt; `logprobs`, `echo` for prompt log-probabilities), both with
`stream=True` (server-sent events, `stream_options.include_usage`), and `GET /paperlab/stats`
(request counts, for tests). Generation runs in worker threads, so concurrent requests overlap;
a generation (streamed or not) stops when its client goes away, and every generation stops at
its next token when the server is asked to exit (SIGTERM, Ctrl-C), so it exits at once. `n` is
capped at MAX_N, `top_logprobs`
at MAX_TOP_LOGPROBS, `max_tokens` at the room left in the context.

For tests and the latency benchmark the server can misbehave on purpose:
`latency` adds a fixed delay to every completion request, and `faults` is a queue of failures
served to the next completion requests in order: "429", "500", "503", "malformed" (a 200 whose
body is not JSON), "drop" (the connection closes mid-body), "slow:SECONDS" (a delay).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from paperlab.core.data.text import ByteTokenizer
from paperlab.core.generate import logits_to_probs
from paperlab.core.kv_cache import KVCache
from paperlab.core.llm.chat import render_chat

FAULTS = ("429", "500", "503", "malformed", "drop")
MAX_N = 16  # choices per request
MAX_TOP_LOGPROBS = 20  # the OpenAI API's own limit


class ServeError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class _Req(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class ChatRequest(_Req):
    messages: list[dict[str, Any]]
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None


class CompletionRequest(_Req):
    prompt: str | list[str]
    max_tokens: int | None = 16
    logprobs: int | None = None
    echo: bool = False


class ServedModel:
    """A loaded chat model and its byte tokenizer; `generate` is thread-safe (no shared state)."""

    def __init__(self, directory: str | os.PathLike):
        from paperlab.core.llm.tiny import load_chat_model

        self.model, self.info = load_chat_model(directory)
        self.model.eval()
        self.tok = ByteTokenizer(special_tokens=True)
        self.context = self.model.config.max_seq_len

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, bos=True)

    def check_context(self, n_prompt: int) -> None:
        if n_prompt >= self.context:
            raise ServeError(
                400,
                f"prompt has {n_prompt} tokens; this model's context is {self.context} tokens",
                "context_length_exceeded",
            )

    @torch.inference_mode()
    def prompt_logprobs(self, ids: list[int], top: int) -> list[dict[str, Any]]:
        """Log-probability of every prompt token after the BOS, given the tokens before it."""
        logits = self.model(torch.tensor([ids]))[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        out = []
        for i in range(1, len(ids)):
            out.append(_token_entry(ids[i], lp[i - 1], top))
        return out

    def generate(
        self,
        ids: list[int],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        stop: Sequence[str],
        top: int | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[str, list[int], str, list[dict[str, Any]]]:
        """(text, token ids, finish_reason, per-token logprob entries) for one sample; raises
        :class:`Cancelled` when ``should_stop()`` turns true between two tokens."""
        out: list[int] = []
        entries: list[dict[str, Any]] = []
        text, finish = "", "length"
        for step in self.steps(
            ids,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
            top=top,
            should_stop=should_stop,
        ):
            if step.token is not None:
                out.append(step.token)
                if step.entry is not None:
                    entries.append(step.entry)
            text, finish = step.text, step.finish or finish
        return text, out, finish, entries

    def steps(
        self,
        ids: list[int],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        stop: Sequence[str],
        top: int | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[_Step]:
        """One sample, token by token: a `_Step` per generated token (the text so far, cut at a
        stop string), the last with its finish reason ("stop" or "length"). Raises
        :class:`Cancelled` when ``should_stop()`` turns true between two tokens."""
        model = self.model
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        cache = KVCache.for_model(model, batch_size=1, max_len=len(ids) + max_tokens)
        with torch.inference_mode():
            logits = model(torch.tensor([ids]), cache=cache)[0, -1].float()
        out: list[int] = []
        text = ""
        for _ in range(max_tokens):
            if should_stop is not None and should_stop():
                raise Cancelled
            with torch.inference_mode():
                if temperature == 0:
                    token = int(logits.argmax())
                else:
                    probs = logits_to_probs(logits[None], temperature=temperature, top_p=top_p)
                    token = int(torch.multinomial(probs, 1, generator=gen))
            if token == self.tok.eos_id:
                yield _Step(text, None, None, "stop")
                return
            entry = None
            if top is not None:
                entry = _token_entry(token, torch.log_softmax(logits, -1), top)
            out.append(token)
            text = self.tok.decode(out)
            hit = [text.index(s) for s in stop if s in text]
            if hit:
                yield _Step(text[: min(hit)], token, entry, "stop")
                return
            if len(out) == max_tokens:
                yield _Step(text, token, entry, "length")
                return
            yield _Step(text, token, entry, None)
            with torch.inference_mode():
                logits = model(torch.tensor([[token]]), cache=cache)[0, -1].float()
        yield _Step(text, None, None, "length")  # max_tokens == 0


class Cancelled(Exception):
    """A generation stopped early: its client went away, or the server is exiting."""


@dataclass(frozen=True)
class _Step:
    text: str  # the reply so far (cut at a stop string)
    token: int | None  # the token this step generated (None: none, e.g. EOS)
    entry: dict[str, Any] | None  # its logprob entry, when asked for
    finish: str | None  # "stop" / "length" on the last step


def _token_str(token: int) -> str:
    return bytes([token]).decode("utf-8", errors="replace") if token < 256 else f"<{token}>"


def _token_entry(token: int, logprobs: torch.Tensor, top: int) -> dict[str, Any]:
    entry = {
        "token": _token_str(token),
        "logprob": float(logprobs[token]),
        "bytes": [token] if token < 256 else [],
    }
    if top:
        values, idx = logprobs.topk(top)
        entry["top"] = [(int(i), float(v)) for v, i in zip(values, idx, strict=True)]
    else:
        entry["top"] = []
    return entry


class Faults:
    """The queue of injected failures, consumed one per completion request."""

    def __init__(self, specs: Sequence[str]):
        for s in specs:
            if s not in FAULTS and not (s.startswith("slow:") and _is_float(s[5:])):
                raise ValueError(f"unknown fault {s!r}; known: {', '.join(FAULTS)}, slow:SECONDS")
        self._queue = list(specs)
        self._lock = threading.Lock()

    def next(self) -> str | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def create_app(
    model_dirs: Sequence[str | os.PathLike],
    *,
    latency: float = 0.0,
    faults: Sequence[str] = (),
    api_key_env: str | None = None,
) -> FastAPI:
    models: dict[str, ServedModel] = {}
    for d in model_dirs:
        served = ServedModel(d)
        if served.info.model_id in models:
            raise ValueError(f"two model directories have the model id {served.info.model_id!r}")
        models[served.info.model_id] = served
    fault_queue = Faults(faults)
    stats: Counter[str] = Counter()
    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise ValueError(f"--api-key-env {api_key_env}: the variable is not set")
    app = FastAPI(title="paperlab serve", docs_url=None, redoc_url=None)
    shutdown = threading.Event()  # set by `serve` on SIGTERM / Ctrl-C: generations stop
    app.state.shutdown = shutdown

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": kind}}, status)

    @app.exception_handler(ServeError)
    async def _serve_error(_: Request, e: ServeError) -> JSONResponse:
        return error(e.status, e.message, e.kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(400, f"invalid request: {where}: {first.get('msg', 'invalid')}")

    async def gate(request: Request) -> Response | None:
        """Stats, the API key, injected faults and latency; a response ends the request."""
        stats[request.url.path] += 1
        if api_key is not None and request.url.path.startswith("/v1/"):
            if request.headers.get("authorization") != f"Bearer {api_key}":
                return error(401, "invalid API key", "authentication_error")
        if request.url.path in ("/v1/chat/completions", "/v1/completions"):
            stats["completion_requests"] += 1
            fault = fault_queue.next()
            if fault is not None:
                stats[f"fault:{fault}"] += 1
                if fault in ("429", "500", "503"):
                    return error(int(fault), f"injected fault {fault}", "server_error")
                if fault == "malformed":
                    return Response("{not json", media_type="application/json")
                if fault == "drop":
                    return _Dropped()
                await asyncio.sleep(float(fault[5:]))
            if latency:
                await asyncio.sleep(latency)
        return None

    # a pure ASGI middleware (not @app.middleware): the endpoints' request.is_disconnected()
    # then sees the real connection, which is how a plain generation learns its client left
    app.add_middleware(_Gate, gate=gate)

    def get_model(name: str) -> ServedModel:
        if name not in models:
            raise ServeError(
                404, f"model {name!r} not found; serving: {', '.join(models)}", "model_not_found"
            )
        return models[name]

    def sampling(req: _Req, served: ServedModel, n_prompt: int, max_tokens: int | None):
        if req.temperature < 0 or not 0 < req.top_p <= 1 or not 1 <= req.n <= MAX_N:
            raise ServeError(400, f"need temperature >= 0, 0 < top_p <= 1, 1 <= n <= {MAX_N}")
        for name in req.model_extra or {}:  # fields other servers read (repetition_penalty):
            stats[f"ignored:{name}"] += 1  # accepted and ignored, counted for the curious
        served.check_context(n_prompt)
        room = served.context - n_prompt
        max_tokens = room if max_tokens is None else min(max_tokens, room)
        if max_tokens < 0:
            raise ServeError(400, "max_tokens must be >= 0")
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        return dict(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, stop=stop)

    def check_top(name: str, top: int | None) -> None:
        if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
            raise ServeError(400, f"{name} must be in [0, {MAX_TOP_LOGPROBS}], got {top}")

    def streamed(req: _Req, ids: list[int], served: ServedModel, params, chunk) -> Response:
        """Server-sent events: per choice a first chunk (`chunk(i, None, None)`), content
        deltas, a last chunk with the finish reason; a usage chunk when
        `stream_options.include_usage`; then `data: [DONE]`. Text that could still become a
        stop string, or half a UTF-8 character, is held back until it cannot. Generation
        stops when the client goes away (Starlette stops iterating)."""
        include_usage = bool((req.stream_options or {}).get("include_usage"))
        rid, created = f"{uuid.uuid4().hex[:12]}", int(time.time())

        def events() -> Iterator[str]:
            n_out = 0
            for i, seed in enumerate(seeds(req)):
                yield _sse(chunk(rid, created, i, None, None))
                sent = ""
                steps = served.steps(
                    ids, seed=seed, top=None, should_stop=shutdown.is_set, **params
                )
                for step in _until_cancelled(steps):
                    n_out += step.token is not None
                    stats["streamed_tokens"] += step.token is not None
                    ready = step.text if step.finish else settled_text(step.text, params["stop"])
                    if len(ready) > len(sent):
                        yield _sse(chunk(rid, created, i, ready[len(sent) :], None))
                        sent = ready
                    if step.finish:
                        yield _sse(chunk(rid, created, i, None, step.finish))
            if include_usage:
                last = chunk(rid, created, 0, None, None)
                last.update(choices=[], usage=_usage(len(ids), n_out))
                yield _sse(last)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def generate(request: Request, served: ServedModel, *args: Any, **kw: Any):
        """``served.generate`` in a worker thread, stopped at the next token when the client
        disconnects or the server exits (then a 503 for whoever is still listening)."""
        gone = threading.Event()

        async def watch() -> None:
            while not gone.is_set():
                if await request.is_disconnected():
                    gone.set()
                    stats["cancelled_generations"] += 1
                await asyncio.sleep(0.1)

        def stop() -> bool:
            return gone.is_set() or shutdown.is_set()

        watcher = asyncio.create_task(watch())
        try:
            return await run_in_threadpool(served.generate, *args, should_stop=stop, **kw)
        except Cancelled:
            msg = "generation cancelled: the server is exiting"
            raise ServeError(503, msg, "server_error") from None
        finally:
            gone.set()
            watcher.cancel()

    def seeds(req: _Req) -> list[int | None]:
        return [None if req.seed is None else req.seed + i for i in range(req.n)]

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "paperlab"} for m in models]
        return {"object": "list", "data": data}

    @app.get("/v1/models/{model_id}")
    async def get_model_info(model_id: str) -> dict[str, Any]:
        get_model(model_id)  # 404 for an unknown id
        return {"id": model_id, "object": "model", "created": 0, "owned_by": "paperlab"}

    @app.get("/paperlab/stats")
    async def get_stats() -> dict[str, int]:
        return dict(stats)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request) -> Any:
        served = get_model(req.model)
        messages = []
        for m in req.messages:
            if not isinstance(m.get("content"), str):
                raise ServeError(400, "message content must be a string")
            messages.append({"role": m.get("role"), "content": m["content"]})
        try:
            ids = served.encode(render_chat(messages))
        except ValueError as e:
            raise ServeError(400, str(e)) from None
        params = sampling(req, served, len(ids), req.max_completion_tokens or req.max_tokens)
        check_top("top_logprobs", req.top_logprobs)
        top = (req.top_logprobs or 0) if req.logprobs else None
        if req.stream:
            if top is not None:
                raise ServeError(400, "stream: logprobs are not streamed by paperlab serve")
            return streamed(req, ids, served, params, _chat_chunk(req.model))
        choices, n_out = [], 0
        for i, seed in enumerate(seeds(req)):
            text, toks, finish, entries = await generate(
                request, served, ids, seed=seed, top=top, **params
            )
            n_out += len(toks)
            logprobs = None
            if top is not None:
                logprobs = {"content": [_chat_logprob(e) for e in entries]}
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": choices,
            "usage": _usage(len(ids), n_out),
        }

    @app.post("/v1/completions")
    async def complete(req: CompletionRequest, request: Request) -> Any:
        served = get_model(req.model)
        prompt = req.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise ServeError(400, "this server takes one prompt per request")
            prompt = prompt[0]
        ids = served.encode(prompt)
        params = sampling(req, served, len(ids), req.max_tokens)
        check_top("logprobs", req.logprobs)
        top = req.logprobs
        if req.stream:
            if top is not None or req.echo:
                raise ServeError(400, "stream: logprobs and echo are not streamed")
            return streamed(req, ids, served, params, _completion_chunk(req.model))
        choices, n_out = [], 0
        for i, seed in enumerate(seeds(req)):
            text, toks, finish, entries = await generate(
                request, served, ids, seed=seed, top=top, **params
            )
            n_out += len(toks)
            logprobs = None
            if top is not None:
                if req.echo:
                    prompt_entries = await run_in_threadpool(served.prompt_logprobs, ids, top)
                    entries = prompt_entries + entries
                logprobs = _completion_logprobs(entries)
            if req.echo:
                text = prompt + text
            choices.append(
                {"index": i, "text": text, "logprobs": logprobs, "finish_reason": finish}
            )
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:12]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": choices,
            "usage": _usage(len(ids), n_out),
        }

    app.state.models = models
    return app


class _Gate:
    """ASGI middleware: ``gate(request)`` may answer an HTTP request itself."""

    def __init__(self, app: Any, gate: Callable[[Request], Any]) -> None:
        self.app, self.gate = app, gate

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            response = await self.gate(Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Dropped(Response):
    """Promises a body, sends part of it, then stops: the client sees the connection drop."""

    def __init__(self) -> None:
        super().__init__(b'{"id": "cut', media_type="application/json")
        self.headers["content-length"] = "1000"


def _until_cancelled(steps: Iterator[_Step]) -> Iterator[_Step]:
    """The steps until the generation is cancelled (the stream then just ends)."""
    try:
        yield from steps
    except Cancelled:
        return


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def settled_text(text: str, stop: Sequence[str]) -> str:
    """The part of a reply still growing that can be sent: without a trailing half UTF-8
    character (decoded as U+FFFD) and without a tail that may become a stop string."""
    text = text.rstrip("\ufffd")
    hold = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return text[: len(text) - hold]


def _chat_chunk(model: str):
    """Chat chunks: the first carries the role, then content deltas, the last a finish reason."""

    def chunk(rid: str, created: int, i: int, delta: str | None, finish: str | None):
        if finish is not None:
            body: dict[str, Any] = {}
        elif delta is None:
            body = {"role": "assistant", "content": ""}
        else:
            body = {"content": delta}
        return {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": i, "delta": body, "logprobs": None, "finish_reason": finish}],
        }

    return chunk


def _completion_chunk(model: str):
    def chunk(rid: str, created: int, i: int, delta: str | None, finish: str | None):
        return {
            "id": f"cmpl-{rid}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": i, "text": delta or "", "logprobs": None, "finish_reason": finish}
            ],
        }

    return chunk


def _usage(n_prompt: int, n_out: int) -> dict[str, int]:
    return {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}


def _chat_logprob(e: dict[str, Any]) -> dict[str, Any]:
    top = [
        {"token": _token_str(t), "logprob": lp, "bytes": [t] if t < 256 else []}
        for t, lp in e["top"]
    ]
    return {"token": e["token"], "logprob": e["logprob"], "bytes": e["bytes"], "top_logprobs": top}


def _completion_logprobs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = [e["token"] for e in entries]
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return {
        "tokens": tokens,
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{_token_str(t): lp for t, lp in e["top"]} for e in entries],
        "text_offset": offsets,
    }


def _watch_parent(pid: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        if os.getppid() != pid:
            os._exit(0)


def serve(
    model_dirs: Sequence[str | os.PathLike],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 1,
    latency: float = 0.0,
    faults: Sequence[str] = (),
    api_key_env: str | None = None,
    ready_file: str | os.PathLike | None = None,
    parent_pid: int | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until interrupted. Port 0 picks a free port; `ready_file` receives the port once
    the socket is listening (how `LocalServer` and tests find it); with `parent_pid` the server
    exits when that process is gone (no orphan servers after a killed run)."""
    import uvicorn

    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()

    torch.set_num_threads(threads)
    app = create_app(model_dirs, latency=latency, faults=faults, api_key_env=api_key_env)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(128)
    port = sock.getsockname()[1]

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.shutdown.set()  # running generations stop at their next token
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    server = _Server(config)
    names = ", ".join(app.state.models)
    print(f"paperlab serve: {names} at http://{host}:{port}/v1 (Ctrl-C stops)", flush=True)
    if ready_file is not None:
        tmp = Path(f"{ready_file}.tmp")
        tmp.write_text(str(port))
        os.replace(tmp, ready_file)
    server.run(sockets=[sock])

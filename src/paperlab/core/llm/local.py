"""`LocalServer`: run `paperlab serve` in a child process on a free port of 127.0.0.1.

This is how the miniature claims, the benchmark and the tests reach paperlab's own models over
real HTTP with the real client:

    with LocalServer(["zoo/adder-0", "zoo/adder-1"]) as server:
        config = server.config()          # one ModelSpec per served model, named by its id
        client = LLMClient(config)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paperlab.core.llm.chat import ChatModelInfo
from paperlab.core.llm.config import LLMConfig, ModelSpec


class LocalServer:
    def __init__(
        self,
        model_dirs: Sequence[str | os.PathLike],
        *,
        latency: float = 0.0,
        faults: Sequence[str] = (),
        threads: int = 1,
        api_key_env: str | None = None,
        startup_timeout: float = 120.0,
    ):
        if not model_dirs:
            raise ValueError("LocalServer needs at least one model directory")
        self.model_ids = [ChatModelInfo.load(d).model_id for d in model_dirs]
        self.args = [
            sys.executable,
            "-m",
            "paperlab",
            "serve",
            *map(str, model_dirs),
            "--port",
            "0",
            "--threads",
            str(threads),
            "--latency",
            str(latency),
            "--parent-pid",
            str(os.getpid()),
        ]
        for f in faults:
            self.args += ["--fault", f]
        if api_key_env:
            self.args += ["--api-key-env", api_key_env]
        self.api_key_env = api_key_env
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalServer:
        tmp = Path(tempfile.mkdtemp(prefix="paperlab-serve-"))
        ready = tmp / "port"
        log = open(tmp / "log", "w+b")  # noqa: SIM115 - kept for the error message
        self.proc = subprocess.Popen(
            [*self.args, "--ready-file", str(ready)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log.seek(0)
                tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"paperlab serve did not start: {' | '.join(tail)}")
            time.sleep(0.05)
        self.port = int(ready.read_text())
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/paperlab/stats") as r:
            return json.loads(r.read())

    def config(
        self, prices: dict[str, tuple[float, float]] | None = None, **spec: Any
    ) -> LLMConfig:
        """An LLMConfig naming every served model by its id; `prices` maps id -> (input,
        output) USD per 1K tokens; other ModelSpec fields (max_concurrency, ...) via `spec`."""
        spec.setdefault("capabilities", ("chat", "raw_completion", "logprobs", "prompt_logprobs"))
        if self.api_key_env:
            spec.setdefault("api_key_env", self.api_key_env)
        models = {}
        for mid in self.model_ids:
            p_in, p_out = (prices or {}).get(mid, (0.0, 0.0))
            models[mid] = ModelSpec(
                name=mid,
                base_url=self.base_url,
                model=mid,
                price_input_per_1k=p_in,
                price_output_per_1k=p_out,
                **spec,
            )
        return LLMConfig(models, source=f"paperlab serve at {self.base_url}")

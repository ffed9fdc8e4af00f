"""`LocalServer`: run `paperlab serve` in a child process on a free port of 127.0.0.1.

This is how the miniature claims, the benchmark and the tests reach paperlab's own models over
real HTTP with the real client:

    with LocalServer(["zoo/adder-0", "zoo/adder-1"]) as server:
        config = server.config()          # one ModelSpec per served model, named by its id
        client = LLMClient(config)

The server's scratch folder (its port file and log) is removed when it stops. Claims that train
chat models and serve them go through the run's artifact cache, so nothing outlives the run:

    dirs = trained_chat_zoo(ctx.cache, "moa-models", spec, train)   # disk-cached directories
    server = serve_chat_models(ctx.cache, dirs)                       # stopped at release
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from paperlab.core.artifacts import ArtifactCache, FolderCodec
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
        self.scratch_dir: Path | None = None  # its port file and log; removed by stop()
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalServer:
        self.scratch_dir = Path(tempfile.mkdtemp(prefix="paperlab-serve-"))
        ready = self.scratch_dir / "port"
        self._log = open(self.scratch_dir / "log", "w+b")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [*self.args, "--ready-file", str(ready)], stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._log.seek(0)
                tail = self._log.read().decode(errors="replace").strip().splitlines()[-3:]
                self.stop()
                raise RuntimeError(f"paperlab serve did not start: {' | '.join(tail)}")
            time.sleep(0.05)
        self.port = int(ready.read_text())
        return self

    def stop(self) -> None:
        """Stop the child process (terminate, then kill after 10 s) and remove its scratch
        folder. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.scratch_dir is not None:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)
            self.scratch_dir = None

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


# ---------------------------------------------------------------------------------------------
# Trained chat models served for one run (through the run's artifact cache)

ZOO_INDEX = "zoo.json"  # in a zoo folder: the model directories, in order


def trained_chat_zoo(
    cache: ArtifactCache,
    name: str,
    spec: Any,
    train: Callable[[Path], Sequence[Path]],
) -> list[Path]:
    """The chat-model directories `train(folder)` writes under `folder`, trained once per
    `(name, spec)`: `spec` must hold everything the training depends on (sizes, steps, seed).
    The folder is one of the cache's temp folders (removed at release); with a disk cache it is
    also kept there (`FolderCodec`), and a later run serves that copy without training."""

    def build() -> Path:
        folder = cache.tempdir(f"paperlab-{name}-")
        dirs = [Path(d) for d in train(folder)]
        index = [d.relative_to(folder).as_posix() for d in dirs]
        (folder / ZOO_INDEX).write_text(json.dumps(index))
        return folder

    folder = cache.get(name, spec, build, codec=FolderCodec())
    return [folder / rel for rel in json.loads((folder / ZOO_INDEX).read_text())]


def serve_chat_models(
    cache: ArtifactCache, model_dirs: Sequence[str | os.PathLike], **server_kw: Any
) -> LocalServer:
    """A started `LocalServer` over `model_dirs`, stopped when `cache` is released."""
    server = LocalServer(model_dirs, **server_kw).start()
    cache.on_release(server.stop)
    return server

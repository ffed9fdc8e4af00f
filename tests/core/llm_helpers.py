"""Shared helpers and fixtures of the LLM-layer tests (tests/core/test_llm_*.py).

The models are random-init tiny byte-level chat models: their outputs are noise, but they are
real `paperlab serve` models, so every test goes over real HTTP with the real clients.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import save_chat_model

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(vocab_size=259, dim=32, n_layers=1, n_heads=2, max_seq_len=256, multiple_of=32)
BOS = 256


def make_tiny_models(root: Path, ids=("m0", "m1")) -> list[Path]:
    """Random-init tiny chat models saved as servable directories, one per id (seeded)."""
    dirs = []
    for seed, model_id in enumerate(ids):
        torch.manual_seed(seed)
        model = Llama(LlamaConfig(**TINY))
        dirs.append(save_chat_model(model, root / model_id, model_id))
    return dirs


def start_servers(*servers: LocalServer) -> list[LocalServer]:
    """Start several LocalServers at once (each start is ~2 s of imports in a child process)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(s.start) for s in servers]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for s in servers:
                s.stop()
            raise


@contextmanager
def running(*servers: LocalServer):
    start_servers(*servers)
    try:
        yield servers if len(servers) > 1 else servers[0]
    finally:
        for s in servers:
            s.stop()


def run(coro):
    return asyncio.run(coro)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERLAB_")}
    env.update(extra)
    return env


def run_cli_many(argvs, *, env=None, cwd=None, timeout=60) -> list[subprocess.CompletedProcess]:
    """`python -m paperlab ARGV...` for each argv, in parallel; the completed processes."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "paperlab", *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or cli_env(),
            cwd=cwd,
        )
        for argv in argvs
    ]
    done = []
    for argv, p in zip(argvs, procs, strict=True):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        done.append(subprocess.CompletedProcess(argv, p.returncode, out, err))
    return done


# -- fixtures (registered for tests/core by tests/core/conftest.py) ----------------------------


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> list[Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny-chat"))


@pytest.fixture(scope="session")
def llm_server(tiny_model_dirs):
    """One well-behaved server of m0 and m1, shared by every test that only reads from it."""
    with running(LocalServer(tiny_model_dirs)) as server:
        yield server

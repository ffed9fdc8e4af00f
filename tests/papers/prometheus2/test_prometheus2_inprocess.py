"""The in-process batched client: an output depends on its request and seed only, never on the
batch; requests pending together are decoded as one batch; bad requests fail clearly. (That it
decodes what `paperlab serve` decodes is tested beside the judge's server fixture.)"""

from __future__ import annotations

import asyncio

import pytest
import torch

from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.config import ConfigError
from paperlab.papers.prometheus2.inprocess import InProcessClient, decode_batch


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=259, dim=32, n_layers=2, n_heads=2, max_seq_len=96, multiple_of=32)
    return Llama(cfg).eval()


MESSAGES = [[{"role": "user", "content": f"What is {i}+{3 * i}? " * (1 + i % 3)}] for i in range(8)]


def _gather(client, temperature=1.0):
    async def go():
        return await asyncio.gather(
            *[
                client.chat("m", m, max_tokens=12, temperature=temperature, top_p=0.9, seed=i)
                for i, m in enumerate(MESSAGES)
            ]
        )

    return client.run(go())


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_outputs_do_not_depend_on_the_batch(model, temperature):
    together = _gather(InProcessClient({"m": model}), temperature)
    alone = []
    for i, m in enumerate(MESSAGES):
        c = InProcessClient({"m": model}, max_batch=1)
        alone.append(
            c.run(c.chat("m", m, max_tokens=12, temperature=temperature, top_p=0.9, seed=i)).text
        )
    assert [o.text for o in together] == alone


def test_requests_are_batched(model):
    client = InProcessClient({"m": model})
    calls = []
    real = client._flush

    def counting():
        calls.append(len(client._pending))
        real()

    client._flush = counting
    _gather(client)
    assert calls == [len(MESSAGES)]


def test_bad_requests(model):
    client = InProcessClient({"m": model})
    with pytest.raises(ValueError, match="context"):
        client.run(client.chat("m", [{"role": "user", "content": "x" * 200}], max_tokens=4))
    with pytest.raises(ConfigError, match="raw_completion"):
        client.run(client.complete("m", "hello", max_tokens=4))
    with pytest.raises(ValueError, match="models"):
        InProcessClient({})
    with pytest.raises(ValueError, match="max_batch"):
        InProcessClient({"m": model}, max_batch=0)
    with pytest.raises(ValueError, match="same length"):
        decode_batch(model, [[1, 2]], max_tokens=[3, 4], temperature=1.0, top_p=None, seeds=[0])

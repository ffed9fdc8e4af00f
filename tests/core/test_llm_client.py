"""`LLMClient`, its cache, usage, config and JSONL results, against `paperlab serve` over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from llm_helpers import ROOT, cli_env, closed_port, run, start_servers, user

from paperlab.claims import UserError
from paperlab.core.llm.cache import RequestCache
from paperlab.core.llm.client import Completion, EndpointError, LLMClient
from paperlab.core.llm.config import ConfigError, LLMConfig, ModelSpec, load_config, parse_config
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.results import JsonlResults, map_to_jsonl, read_jsonl

KEY_ENV = "PAPERLAB_TEST_KEY"
KEY = "sk-paperlab-RIGHT-7c1f0e9a"
WRONG_KEY = "sk-paperlab-WRONG-3b8d2a44"
FAST = dict(timeout=10.0, max_retries=3)


def requests(server) -> int:
    return server.stats().get("completion_requests", 0)


# -- servers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tiny_model_dirs):
    """The misbehaving servers of this module, started together. Each fault queue belongs to one
    test, so the order of the tests does not matter: "retry" (all four faults), "fail" (one 500,
    no retries), "fail_twice" (errors are not cached). "auth" requires the key in
    $PAPERLAB_TEST_KEY and has no faults."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, KEY)  # the server reads it at start; the clients read it per call
        named = {
            "retry": LocalServer(tiny_model_dirs[:1], faults=["429", "500", "malformed", "drop"]),
            "fail": LocalServer(tiny_model_dirs[:1], faults=["500"]),
            "fail_twice": LocalServer(tiny_model_dirs[:1], faults=["500", "500"]),
            "auth": LocalServer(tiny_model_dirs[:1], api_key_env=KEY_ENV),
            "slow": LocalServer(tiny_model_dirs[:1], latency=0.15),
        }
        start_servers(*named.values())
        try:
            yield named
        finally:
            for s in named.values():
                s.stop()


@pytest.fixture
def client(llm_server):
    return LLMClient(llm_server.config(**FAST))


# -- chat and complete ----------------------------------------------------------------------------


def test_chat_through_local_server(client):
    out = run(client.chat("m0", user("hello"), max_tokens=6))
    assert isinstance(out, Completion)
    assert out.model == "m0" and isinstance(out.text, str)
    assert out.prompt_tokens > 0 and 0 <= out.completion_tokens <= 6
    assert out.finish_reason in ("stop", "length")
    assert not out.cached and out.latency > 0 and out.attempts == 1
    u = client.usage.models["m0"]
    assert (u.calls, u.cached, u.prompt_tokens) == (1, 0, out.prompt_tokens)


def test_chat_logprobs(client):
    out = run(client.chat("m1", user("hi"), max_tokens=4, temperature=0, logprobs=3))
    assert len(out.logprobs) == out.completion_tokens > 0
    for t in out.logprobs:
        assert 1 <= len(t.top) <= 3
        assert all(lp <= t.logprob + 1e-6 for lp in [lp for _, lp in t.top])  # greedy: the max


def test_chat_top_logprobs_keep_every_alternative(client):
    out = run(client.chat("m1", user("hi"), max_tokens=16, temperature=0, logprobs=3))
    for t in out.logprobs:
        assert len(t.top) == 3
        assert t.logprob == pytest.approx(max([lp for _, lp in t.top]))


def test_complete_with_echo_splits_prompt_and_output(client):
    out = run(client.complete("m0", "abc", max_tokens=3, temperature=0, logprobs=2, echo=True))
    assert [t.token for t in out.prompt_logprobs] == ["a", "b", "c"]
    assert len(out.logprobs) == out.completion_tokens
    assert out.text.startswith("abc")
    assert out.prompt_tokens == 4  # BOS + 3 bytes


def test_retries_survive_faults(servers):
    server = servers["retry"]
    c = LLMClient(server.config(timeout=10.0, max_retries=3))
    out = run(c.chat("m0", user("hi"), max_tokens=4))
    assert isinstance(out.text, str)
    stats = server.stats()
    for kind in ("429", "500", "malformed", "drop"):
        assert stats[f"fault:{kind}"] == 1, stats
    assert stats["completion_requests"] == 5  # four faults, then the answer


def test_without_retries_a_500_is_one_line_naming_the_model(servers):
    c = LLMClient(servers["fail"].config(timeout=10.0, max_retries=0))
    with pytest.raises(EndpointError) as e:
        run(c.chat("m0", user("hi"), max_tokens=4))
    msg = str(e.value)
    assert "\n" not in msg and "'m0'" in msg and "500" in msg
    assert servers["fail"].stats()["fault:500"] >= 1


def test_unreachable_endpoint():
    spec = ModelSpec(
        "far", f"http://127.0.0.1:{closed_port()}/v1", "m0", timeout=2.0, max_retries=0
    )
    c = LLMClient(LLMConfig({"far": spec}))
    t = time.perf_counter()
    with pytest.raises(EndpointError, match="unreachable") as e:
        run(c.chat("far", user("hi")))
    assert "\n" not in str(e.value) and "'far'" in str(e.value)
    assert time.perf_counter() - t < 5


def test_undeclared_capability_is_config_error(llm_server):
    c = LLMClient(llm_server.config(capabilities=("chat",), **FAST))
    before = requests(llm_server)
    with pytest.raises(ConfigError, match="raw_completion"):
        run(c.complete("m0", "abc"))
    with pytest.raises(ConfigError, match="logprobs"):
        run(c.chat("m0", user("hi"), logprobs=2))
    c = LLMClient(llm_server.config(capabilities=("chat", "raw_completion", "logprobs"), **FAST))
    with pytest.raises(ConfigError, match="prompt_logprobs"):
        run(c.complete("m0", "abc", echo=True))
    with pytest.raises(ConfigError, match="no model named 'zz'"):
        run(c.chat("zz", user("hi")))
    assert requests(llm_server) == before


def test_max_concurrency_limits_requests_in_flight(servers):
    server = servers["slow"]  # every completion takes >= 0.15 s

    async def four(c):
        return await asyncio.gather(*(c.chat("m0", user(f"{i}"), max_tokens=1) for i in range(4)))

    def wall(max_concurrency):
        c = LLMClient(server.config(max_concurrency=max_concurrency, **FAST))
        t = time.perf_counter()
        run(four(c))
        return time.perf_counter() - t

    assert wall(1) >= 4 * 0.15
    assert wall(4) < 4 * 0.15


# -- cache ----------------------------------------------------------------------------------------


def test_cache_replays_without_server_calls(llm_server, tmp_path):
    path = tmp_path / "cache.sqlite"
    prompts = [f"question {i}" for i in range(4)]

    async def ask_all(c):
        return [await c.chat("m0", user(p), max_tokens=8, temperature=1.0) for p in prompts]

    first = LLMClient(llm_server.config(**FAST), cache=str(path))
    fresh = run(ask_all(first))
    assert not any(o.cached for o in fresh)
    before = requests(llm_server)

    again = LLMClient(llm_server.config(**FAST), cache=RequestCache(path))
    replay = run(ask_all(again))
    assert [o.text for o in replay] == [o.text for o in fresh]
    assert all(o.cached and o.cost == 0 and o.latency == 0 for o in replay)
    assert requests(llm_server) == before
    u = again.usage.models["m0"]
    assert (u.calls, u.cached, u.cost, u.prompt_tokens) == (0, 4, 0.0, 0)
    assert again.usage.total.cached == 4


def test_errors_are_not_cached(servers, tmp_path):
    server = servers["fail_twice"]
    cache = RequestCache(tmp_path / "cache.sqlite")
    c = LLMClient(server.config(timeout=10.0, max_retries=0), cache=cache)
    with pytest.raises(EndpointError):
        run(c.chat("m0", user("hi"), max_tokens=4))
    assert len(cache) == 0
    # the same request (max_retries is not part of the key), retried past the second 500
    c = LLMClient(server.config(timeout=10.0, max_retries=1), cache=cache)
    ok = run(c.chat("m0", user("hi"), max_tokens=4))
    assert not ok.cached and len(cache) == 1
    n = requests(server)
    assert run(c.chat("m0", user("hi"), max_tokens=4)).text == ok.text
    assert requests(server) == n


def test_sample_index_is_its_own_cache_entry(llm_server, tmp_path):
    cache = RequestCache(tmp_path / "cache.sqlite")
    c = LLMClient(llm_server.config(**FAST), cache=cache)
    before = requests(llm_server)
    a = run(c.chat("m0", user("s"), max_tokens=8, temperature=1.0, sample=0))
    b = run(c.chat("m0", user("s"), max_tokens=8, temperature=1.0, sample=1))
    assert not a.cached and not b.cached and len(cache) == 2
    assert requests(llm_server) == before + 2
    assert run(c.chat("m0", user("s"), max_tokens=8, temperature=1.0, sample=1)).text == b.text
    assert requests(llm_server) == before + 2


def test_extra_body_reaches_the_server_and_keys_the_cache(llm_server, tmp_path):
    cache = RequestCache(tmp_path / "cache.sqlite")
    c = LLMClient(llm_server.config(**FAST), cache=cache)
    ignored = llm_server.stats().get("ignored:repetition_penalty", 0)
    plain = run(c.chat("m0", user("e"), max_tokens=4, seed=1))
    extra = run(
        c.chat("m0", user("e"), max_tokens=4, seed=1, extra_body={"repetition_penalty": 1.03})
    )
    assert not plain.cached and not extra.cached and len(cache) == 2
    assert llm_server.stats().get("ignored:repetition_penalty", 0) == ignored + 1
    again = run(
        c.chat("m0", user("e"), max_tokens=4, seed=1, extra_body={"repetition_penalty": 1.03})
    )
    assert again.cached and again.text == extra.text
    with pytest.raises(TypeError, match="extra_body"):
        run(c.chat("m0", user("e"), max_tokens=4, extra_body=[("repetition_penalty", 1.0)]))


def test_cache_accepts_a_pathlib_path(llm_server, tmp_path):
    c = LLMClient(llm_server.config(**FAST), cache=tmp_path / "cache.sqlite")
    run(c.chat("m0", user("p"), max_tokens=2))
    assert len(c.cache) == 1


# -- parse retries --------------------------------------------------------------------------------


def reject_first():
    seen = []

    def parse(text):
        seen.append(text)
        return None if len(seen) == 1 else ("ok", text)

    return parse


def test_parse_retry_regenerates_and_replays_from_cache(llm_server, tmp_path):
    path = str(tmp_path / "cache.sqlite")
    before = requests(llm_server)
    c = LLMClient(llm_server.config(**FAST), cache=path)
    out = run(c.chat("m0", user("p"), max_tokens=6, parse=reject_first()))
    assert out.attempts == 2 and out.parsed == ("ok", out.text)
    assert requests(llm_server) == before + 2

    rerun = LLMClient(llm_server.config(**FAST), cache=path)
    again = run(rerun.chat("m0", user("p"), max_tokens=6, parse=reject_first()))
    assert (again.attempts, again.parsed, again.text) == (2, out.parsed, out.text)
    assert again.cached and requests(llm_server) == before + 2
    assert rerun.usage.models["m0"].cached == 2


def test_parse_gives_up_after_retries(client):
    def never(text):
        raise ValueError("no")

    out = run(client.chat("m0", user("p"), max_tokens=3, parse=never, parse_retries=1))
    assert out.attempts == 2 and out.parsed is None


# -- cost -----------------------------------------------------------------------------------------


def test_cost_from_prices(llm_server):
    c = LLMClient(llm_server.config(prices={"m0": (1.0, 2.0)}, **FAST))
    outs = [run(c.chat("m0", user(f"c{i}"), max_tokens=5)) for i in range(3)]
    other = run(c.chat("m1", user("free"), max_tokens=5))
    for o in outs:
        assert o.cost == pytest.approx((o.prompt_tokens * 1.0 + o.completion_tokens * 2.0) / 1000)
        assert o.cost > 0
    assert other.cost == 0
    u, total = c.usage.models["m0"], c.usage.total
    assert u.cost == pytest.approx(sum(o.cost for o in outs))
    assert u.prompt_tokens == sum(o.prompt_tokens for o in outs)
    assert u.completion_tokens == sum(o.completion_tokens for o in outs)
    assert total.calls == 4 and total.cost == pytest.approx(u.cost)
    assert total.prompt_tokens == u.prompt_tokens + other.prompt_tokens
    assert c.usage.to_dict()["total"]["calls"] == 4
    assert "m0" in c.usage.table()


# -- secrets --------------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error_without_the_key(servers, monkeypatch):
    monkeypatch.setenv("PAPERLAB_OTHER_KEY", WRONG_KEY)
    c = LLMClient(servers["auth"].config(api_key_env="PAPERLAB_OTHER_KEY", **FAST))
    with pytest.raises(EndpointError, match="authentication") as e:
        run(c.chat("m0", user("hi"), max_tokens=3))
    assert WRONG_KEY not in str(e.value) and KEY not in str(e.value)
    assert "PAPERLAB_OTHER_KEY" in str(e.value)


def test_right_key_works_and_is_never_written(servers, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "cache.sqlite"
    c = LLMClient(servers["auth"].config(**FAST), cache=str(path))

    async def fn(item):
        out = await c.chat("m0", user(item["q"]), max_tokens=4)
        return {k: v for k, v in dataclasses.asdict(out).items() if k != "parsed"}

    with JsonlResults(tmp_path / "out.jsonl") as results:
        done, failed = run(
            map_to_jsonl([{"id": 1, "q": "a"}, {"id": 2, "q": "b"}], fn, results, progress=False)
        )
    assert (done, failed) == (2, [])
    assert len(c.cache) == 2
    c.cache.close()
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert KEY.encode() not in written
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err + caplog.text
    assert caplog.records  # the SDK did log at DEBUG: the check above saw something


def test_missing_key_variable_is_config_error(llm_server, monkeypatch):
    monkeypatch.delenv("PAPERLAB_UNSET_KEY", raising=False)
    c = LLMClient(llm_server.config(api_key_env="PAPERLAB_UNSET_KEY", **FAST))
    with pytest.raises(ConfigError, match="PAPERLAB_UNSET_KEY") as e:
        run(c.chat("m0", user("hi")))
    assert "not set" in str(e.value) and "\n" not in str(e.value)


# -- config ---------------------------------------------------------------------------------------

GOOD = """
[defaults]
base_url = "http://127.0.0.1:9/v1"
max_retries = 1
capabilities = ["chat", "logprobs"]

[models.a]
model = "model-a"
price_input_per_1k = 0.5

[models.b]
model = "model-b"
base_url = "https://example.invalid/v1"
api_key_env = "B_KEY"
max_retries = 5
"""


def test_load_config_merges_defaults(tmp_path):
    f = tmp_path / "llm.toml"
    f.write_text(GOOD)
    cfg = load_config(f)
    a, b = cfg.get("a"), cfg.get("b")
    assert (a.base_url, a.model, a.max_retries, a.price_input_per_1k) == (
        "http://127.0.0.1:9/v1",
        "model-a",
        1,
        0.5,
    )
    assert a.capabilities == ("chat", "logprobs") and a.api_key() == "EMPTY"
    assert (b.base_url, b.max_retries, b.api_key_env) == ("https://example.invalid/v1", 5, "B_KEY")
    assert "a" in cfg and "c" not in cfg
    with pytest.raises(ConfigError, match="llm.toml"):
        cfg.get("c")


@pytest.mark.parametrize(
    "text, match",
    [
        ("[models.a\nmodel = 1", "not valid TOML"),
        ('[models.a]\nbase_url = "http://x/v1"\nmodel = "m"\ncolour = "red"', "unknown key"),
        ('[models.a]\nbase_url = "http://x/v1"\nmodel = "m"\nmax_retries = "3"', "wrong type"),
        ('[models.a]\nbase_url = "http://x/v1"\nmodel = "m"\ntimeout = true', "wrong type"),
        ('[models.a]\nmodel = "m"', "missing 'base_url'"),
        ('[models.a]\nbase_url = "ftp://x"\nmodel = "m"', "base_url must start"),
        (
            '[models.a]\nbase_url = "http://x/v1"\nmodel = "m"\ncapabilities = ["vision"]',
            "unknown capabilities",
        ),
        ('[defaults]\nbase_url = "http://x/v1"', "no models"),
        ("", "no models"),
        ("[models]\na = 3", "must be a table"),
    ],
)
def test_bad_config_is_config_error_naming_the_file(tmp_path, text, match):
    f = tmp_path / "bad-llm.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(f)
    assert "bad-llm.toml" in str(e.value) and "\n" not in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="nothere.toml: no such file"):
        load_config(tmp_path / "nothere.toml")


def test_config_error_is_a_user_error():
    assert issubclass(ConfigError, UserError)
    with pytest.raises(UserError, match="cfg.toml"):
        parse_config({"models": {}}, "cfg.toml")


@pytest.mark.parametrize("caps", ['["chat", ["logprobs"]]', '["vision", 1]'])
def test_non_string_capability_is_config_error(tmp_path, caps):
    f = tmp_path / "caps.toml"
    f.write_text(f'[models.a]\nbase_url = "http://x/v1"\nmodel = "m"\ncapabilities = {caps}')
    with pytest.raises(ConfigError, match="caps.toml"):
        load_config(f)


# -- JSONL results --------------------------------------------------------------------------------

SCRIPT = """
import asyncio, sys
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.config import LLMConfig, ModelSpec
from paperlab.core.llm.results import JsonlResults, map_to_jsonl

base_url, out = sys.argv[1], sys.argv[2]
spec = ModelSpec("m0", base_url, "m0", timeout=10.0, max_retries=1)
client = LLMClient(LLMConfig({"m0": spec}))

async def answer(item):
    c = await client.chat("m0", [{"role": "user", "content": f"item {item['id']}"}],
                          max_tokens=4, temperature=0)
    return {"text": c.text, "tokens": c.completion_tokens}

with JsonlResults(out, resume=True) as results:
    done, failed = asyncio.run(
        map_to_jsonl([{"id": i} for i in range(40)], answer, results, concurrency=4,
                     progress=False))
sys.exit(1 if failed else 0)
"""


def lines_of(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_resume_after_sigkill_loses_and_repeats_nothing(servers, tmp_path):
    server = servers["slow"]
    script, out = tmp_path / "job.py", tmp_path / "results.jsonl"
    script.write_text(textwrap.dedent(SCRIPT))
    argv = [sys.executable, str(script), server.base_url, str(out)]
    before = requests(server)

    proc = subprocess.Popen(argv, env=cli_env(), cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while lines_of(out) < 5:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    first = [json.loads(line) for line in out.read_text().splitlines() if line.endswith("}")]
    assert 5 <= len(first) < 40
    with open(out, "ab") as fh:  # as if killed in the middle of a write
        fh.write(b'{"id": 39, "text": "tor')

    subprocess.run(argv, env=cli_env(), cwd=ROOT, check=True, timeout=60)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert sorted(ids) == list(range(40))
    assert all(isinstance(r["text"], str) for r in records)
    assert requests(server) - before <= 40 + 4 + 1  # only the items in flight were redone


def test_existing_results_need_resume(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"id": 1}\n')
    with pytest.raises(UserError, match="r.jsonl exists"):
        JsonlResults(out)
    with JsonlResults(out, resume=True) as r:
        assert r.done == {1}


@pytest.mark.parametrize("bad", ["not json", '{"no_id": 1}'])
def test_resume_of_a_corrupt_results_file_is_user_error(tmp_path, bad):
    out = tmp_path / "r.jsonl"
    out.write_text(f'{{"id": 1}}\n{bad}\n')
    with pytest.raises(UserError, match=r"r\.jsonl:2"):
        JsonlResults(out, resume=True)


def test_failed_items_are_not_written_and_retried_on_resume(tmp_path):
    out = tmp_path / "r.jsonl"
    broken = {2}

    async def fn(item):
        if item["id"] in broken:
            raise EndpointError("model 'm0' at http://x: HTTP 500: boom")
        return {"v": item["id"] * 10}

    items = [{"id": i} for i in range(4)]
    with JsonlResults(out) as r:
        done, failed = run(map_to_jsonl(items, fn, r, progress=False))
    assert done == 3 and failed == [(2, "model 'm0' at http://x: HTTP 500: boom")]
    broken.clear()
    with JsonlResults(out, resume=True) as r:
        done, failed = run(map_to_jsonl(items, fn, r, progress=False))
        assert (done, failed) == (1, [])
        assert sorted(x["id"] for x in r.records()) == [0, 1, 2, 3]


def test_read_jsonl_broken_line_names_file_and_line(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": "a", "prompt": "x"}\n\n{"prompt": "y"}\n{"id": 3, oops\n')
    with pytest.raises(UserError, match=r"in\.jsonl:4: not valid JSON"):
        read_jsonl(f)
    f.write_text('{"id": "a", "prompt": "x"}\n\n{"prompt": "y"}\n')
    assert [item["id"] for item in read_jsonl(f)] == ["a", 3]
    f.write_text('{"id": 1}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"in\.jsonl:2: expected a JSON object"):
        read_jsonl(f)
    f.write_text('{"id": 1}\n{"id": 1}\n')
    with pytest.raises(UserError, match=r"in\.jsonl:2: duplicate id 1"):
        read_jsonl(f)


def test_run_closes_the_connections_of_its_loop(llm_server, caplog):
    """A client used across several asyncio.run calls and collected later while another loop
    runs leaves no "Event loop is closed" task errors (each run closes its connections)."""
    import gc

    async def collect():
        gc.collect()
        await asyncio.sleep(0.05)  # let any task the collection scheduled run (and fail)

    asyncio.run(collect())  # what earlier tests left behind fails here, before we look
    caplog.set_level(logging.ERROR, logger="asyncio")
    caplog.clear()
    c = LLMClient(llm_server.config(**FAST))
    texts = [c.run(c.chat("m0", user(f"q{i}"), max_tokens=2)).text for i in range(2)]
    assert all(isinstance(t, str) for t in texts)

    del c
    asyncio.run(collect())
    assert "Event loop is closed" not in caplog.text
    assert "never retrieved" not in caplog.text


def test_cache_off_keeps_requests_in_memory(tmp_path, monkeypatch):
    """PAPERLAB_CACHE_DIR=off: the request cache works for the process and writes no file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERLAB_CACHE_DIR", "off")
    cache = RequestCache()
    cache.put("k", {"v": 1})
    assert cache.path is None and cache.get("k") == {"v": 1} and len(cache) == 1
    cache.close()
    assert list(tmp_path.iterdir()) == []

"""PowerInfer-2 engine (arXiv 2406.06282): the bundle layout round-trips, the segmented cache
stays within its budget and evicts least-recently-used, the sparse FFN with an oracle predictor
is the dense FFN, whole-engine greedy decoding is the in-memory dense model's, the reader
threads always shut down, damaged files and bad budgets fail with one line, and the CLI."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from paperlab.core.device import torch_threads
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.papers.powerinfer2.baseline import InMemoryDense, MmapDense
from paperlab.papers.powerinfer2.cache import NeuronCache, parse_budget
from paperlab.papers.powerinfer2.engine import PowerInferEngine, oracle_predictors
from paperlab.papers.powerinfer2.layout import (
    FILES,
    BundleFile,
    CorruptWeightsError,
    non_ffn_state,
    page_cache_bytes,
    write_bundles,
    write_engine_files,
)

DIM, FFN, LAYERS = 32, 128, 2


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def relu_model(seed: int = 0, *, shift: float = -0.01) -> Llama:
    """A random ReGLU Llama; ``shift`` lowers the gate weights so fewer neurons fire."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        dim=DIM, n_layers=LAYERS, n_heads=4, ffn_hidden=FFN, hidden_act="relu", max_seq_len=128
    )
    model = Llama(cfg).eval()
    with torch.no_grad():
        for layer in model.layers:
            layer.mlp.gate_proj.weight.add_(shift)
    return model


def orders(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(FFN, generator=g) for _ in range(LAYERS)]


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Llama, Path, list[torch.Tensor]]:
    model, order = relu_model(), orders()
    write_engine_files(model, tmp_path / "eng", order=order)
    return model, tmp_path / "eng", order


def engine_for(model, path, order, share: float, **kw) -> PowerInferEngine:
    """An engine over ``path`` with the first share/2 of each layer's file order hot."""
    bundles = BundleFile(path / FILES["bundles"])
    budget = parse_budget(share, bundles.ffn_bytes)
    hot = [o[: int(FFN * share / 2)] for o in order]
    return PowerInferEngine(
        config=model.config,
        state=non_ffn_state(model),
        bundles=bundles,
        hot=hot,
        budget_bytes=budget,
        predictors=oracle_predictors(model),
        **kw,
    )


# ---------------------------------------------------------------------------------------------
# Layout


def test_bundle_file_round_trips_weights_exactly(folder):
    model, path, order = folder
    with BundleFile(path / FILES["bundles"]) as f:
        f.verify()
        assert (f.n_layers, f.ffn_hidden, f.dim) == (LAYERS, FFN, DIM)
        assert f.ffn_bytes == LAYERS * FFN * 3 * DIM * 4
        for i, layer in enumerate(model.layers):
            w = f.read_layer(i)  # neuron-id order, whatever the file order
            assert torch.equal(w[:, 0], layer.mlp.gate_proj.weight)
            assert torch.equal(w[:, 1], layer.mlp.up_proj.weight)
            assert torch.equal(w[:, 2], layer.mlp.down_proj.weight.t())
            assert torch.equal(f.order[i], order[i])
            ids = torch.tensor([5, 3, 120, 4, 64])  # any order, any subset
            assert torch.equal(f.read(i, ids), w[ids])


@pytest.mark.parametrize("max_gap", [0, 1, 3, 50])
def test_coalesced_reads_with_gaps_land_in_the_right_buffers(folder, max_gap: int):
    model, path, order = folder
    with BundleFile(path / FILES["bundles"]) as f:
        positions = np.array([0, 1, 2, 5, 6, 20, 21, 60, 127])
        out = np.zeros((len(positions), 3, DIM), dtype=np.float32)
        f.reads = f.bytes_read = 0
        nbytes = f.read_into(1, positions, [memoryview(r) for r in out], max_gap=max_gap)
        runs = {0: 5, 1: 5, 3: 4, 50: 2}[max_gap]  # preadv calls: contiguous runs, merged gaps
        assert f.reads == runs and f.bytes_read == nbytes >= len(positions) * f.bundle_bytes
        ids = order[1][positions]
        assert torch.equal(torch.from_numpy(out), f.read_layer(1)[ids])


def test_write_rejects_an_order_that_is_not_a_permutation(tmp_path: Path):
    bad = orders()
    bad[0][0] = bad[0][1]
    with pytest.raises(ValueError, match="permutation"):
        write_bundles(relu_model(), tmp_path / "b.bin", order=bad)
    assert not list(tmp_path.iterdir())  # no partial file


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) - 100]
    elif how == "magic":
        data[:8] = b"GGUFxxxx"
    elif how == "header":
        data[40] ^= 0xFF
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "magic", "header", "empty"])
def test_damaged_bundle_file_is_one_clear_error(folder, how: str):
    _, path, _ = folder
    _damage(path / FILES["bundles"], how)
    with pytest.raises(CorruptWeightsError) as e:
        BundleFile(path / FILES["bundles"])
    assert "\n" not in str(e.value) and "bundles.bin" in str(e.value)


def test_damaged_weights_are_caught_by_verify(folder):
    _, path, _ = folder
    file = path / FILES["bundles"]
    data = bytearray(file.read_bytes())
    data[-5000] ^= 0x01  # one bit of layer 1's data
    file.write_bytes(bytes(data))
    with BundleFile(file) as f, pytest.raises(CorruptWeightsError, match="layer 1"):
        f.verify()


def test_missing_bundle_file_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="convert"):
        BundleFile(tmp_path / "nope.bin")


# ---------------------------------------------------------------------------------------------
# Budgets and the cache


@pytest.mark.parametrize(
    "value,expected",
    [
        ("25%", 250),
        (0.1, 100),
        ("0.5", 500),
        (300, 300),
        ("2KB", 2000),
        ("1KiB", 1024),
        ("100%", 1000),
    ],
)
def test_parse_budget(value, expected):
    assert parse_budget(value, 1000) == expected


@pytest.mark.parametrize("value", ["abc", "-5%", "0%", "150%", 0, -3, 1.5, "", "25%%", True])
def test_bad_budget_is_one_line_value_error(value):
    with pytest.raises(ValueError) as e:
        parse_budget(value, 1000)
    assert "memory_budget" in str(e.value) and "\n" not in str(e.value)


def test_cache_stays_within_capacity_evicts_lru_and_pins_hot():
    bundle = 3 * 4 * 4
    hot = [torch.tensor([0, 1]), torch.tensor([7])]
    cache = NeuronCache(
        capacity_bytes=10 * bundle, bundle_bytes=bundle, dim=4, ffn_hidden=16, hot=hot
    )
    assert cache.n_slots == 7 and cache.allocated_bytes <= cache.capacity_bytes
    g = torch.Generator().manual_seed(0)
    for _ in range(300):  # a random access stream over both layers
        layer = int(torch.randint(2, (1,), generator=g))
        active = torch.randperm(16, generator=g)[: int(torch.randint(1, 9, (1,), generator=g))]
        cache.begin_step()
        rows, hits, missing = cache.lookup(layer, active.sort().values)
        assert len(rows) + len(hits) + len(missing) == len(active)
        while len(missing):
            slots = cache.admit(layer, missing)
            assert len(slots) == len(set(slots.tolist())) and len(slots) > 0
            missing = missing[len(slots) :]
            cache.begin_step()
        assert cache.resident_bytes <= cache.capacity_bytes
        assert cache.peak_resident_bytes <= cache.capacity_bytes
        for layer_hot in hot:  # hot neurons are never given a cold slot
            assert (cache.slot_of[0, hot[0]] < 0).all() and (cache.slot_of[1, hot[1]] < 0).all()
            assert layer_hot is not None
    # LRU order: after touching some, the next admissions evict the least recently used
    cache = NeuronCache(
        capacity_bytes=3 * bundle,
        bundle_bytes=bundle,
        dim=4,
        ffn_hidden=16,
        hot=[torch.tensor([], dtype=torch.long)],
    )
    for n in (2, 3, 4):
        cache.begin_step()
        cache.admit(0, torch.tensor([n]))
    cache.begin_step()
    cache.lookup(0, torch.tensor([2]))  # 2 becomes most recent: 3 is now the oldest
    cache.begin_step()
    cache.admit(0, torch.tensor([9]))
    cached = {n for n in range(16) if cache.slot_of[0, n] >= 0}
    assert cached == {2, 4, 9}
    cache.begin_step()
    cache.lookup(0, torch.tensor([4, 9]))  # protected in this step: only 2 may go
    assert cache.evictable() == 1
    assert len(cache.admit(0, torch.tensor([10, 11]))) == 1
    assert {n for n in range(16) if cache.slot_of[0, n] >= 0} == {4, 9, 10}


# ---------------------------------------------------------------------------------------------
# The engine


@pytest.mark.parametrize("pipeline", [True, False])
@pytest.mark.parametrize("tokens", [1, 7])
def test_sparse_ffn_with_oracle_predictor_is_the_dense_ffn(folder, pipeline: bool, tokens: int):
    """Decode (1 token, predictor mask) and prefill (7 tokens, polymorphic dense path), at a
    budget far below one layer so hits, misses, evictions and waves all happen."""
    model, path, order = folder
    with engine_for(model, path, order, 0.1, pipeline=pipeline) as engine:
        engine.reader.start()
        try:
            for step in range(5):
                x = torch.randn(1, tokens, DIM, generator=torch.Generator().manual_seed(step))
                for i, layer in enumerate(model.layers):
                    with torch.no_grad():
                        assert torch.allclose(engine.ffn(i, x), layer.mlp(x), atol=1e-5)
        finally:
            engine.reader.close()
        assert engine.cache.evictions > 0 and engine.bundles.bytes_read > 0


@pytest.mark.parametrize("share", [1.0, 0.25, 0.1])
def test_engine_greedy_decoding_is_the_in_memory_models(folder, share: float):
    model, path, order = folder
    ids = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(1))
    expected = model.generate(ids, max_new_tokens=20)
    with engine_for(model, path, order, share) as engine:
        assert torch.equal(engine.generate(ids, max_new_tokens=20), expected)
        s = engine.stats
    assert s["peak_resident_ffn_bytes"] <= s["budget_bytes"]
    assert 0 <= s["hit_rate"] <= 1 and 0 <= s["io_wait_share"] <= 1
    if share == 1.0:  # everything fits: after the prompt, nothing is read
        assert s["bytes_read_per_token"] == 0 and s["hit_rate"] == 1.0
    else:
        assert s["bytes_read_per_token"] > 0
    with InMemoryDense(model) as dense:
        assert torch.equal(dense.generate(ids, max_new_tokens=20), expected)
    with MmapDense(path, memory_budget=share) as mm:
        assert torch.equal(mm.generate(ids, max_new_tokens=20), expected)
        assert mm.resident_ffn_bytes <= mm.budget_bytes


def test_reads_do_not_stay_in_the_page_cache(folder):
    model, path, order = folder
    with engine_for(model, path, order, 0.25) as engine:
        engine.generate([1, 2, 3, 4], max_new_tokens=10)
        cached = engine.stats.get("page_cache_bytes")
    if cached is None:
        pytest.skip("mincore is not available here")
    assert cached == 0


def test_reader_threads_join_on_close_even_after_an_error(folder):
    model, path, order = folder
    before = threading.active_count()
    engine = engine_for(model, path, order, 0.25, io_threads=3)
    calls = {"n": 0}
    good = engine.predictors[1]

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("predictor exploded")
        return good(x)

    engine.predictors[1] = failing
    with pytest.raises(RuntimeError, match="exploded"):
        engine.generate([1, 2, 3], max_new_tokens=10)
    assert threading.active_count() == before
    engine.predictors[1] = good
    engine.generate([1, 2, 3], max_new_tokens=5)  # still usable, threads restarted and joined
    assert threading.active_count() == before
    engine.close()
    engine.close()  # twice is fine
    assert threading.active_count() == before


def test_a_file_truncated_under_a_running_engine_fails_cleanly(folder):
    model, path, order = folder
    before = threading.active_count()
    engine = engine_for(model, path, order, 0.1)
    os.truncate(path / FILES["bundles"], engine.bundles.offset(1))  # layer 1 is gone
    with pytest.raises(CorruptWeightsError, match="short read"):
        engine.generate([1, 2, 3], max_new_tokens=5)
    engine.close()
    assert threading.active_count() == before


def test_budget_too_small_is_a_clear_error(folder):
    model, path, order = folder
    with pytest.raises(ValueError, match="too small"):
        engine_for(model, path, order, 0.001)


def test_engine_folder_loader_names_the_problem(tmp_path: Path, folder):
    from paperlab.papers.powerinfer2.layout import load_engine_folder

    with pytest.raises(FileNotFoundError, match="convert"):
        load_engine_folder(tmp_path)
    _, path, _ = folder
    (path / FILES["config"]).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="damaged engine folder"):
        load_engine_folder(path)


def test_page_cache_probe_sees_a_read_file(folder):
    _, path, _ = folder
    file = path / FILES["bundles"]
    with BundleFile(file) as f:
        f.drop_page_cache()
        if page_cache_bytes(file) is None:
            pytest.skip("mincore is not available here")
        assert page_cache_bytes(file) == 0
        file.read_bytes()
        assert page_cache_bytes(file) > 0
        f.drop_page_cache()


# ---------------------------------------------------------------------------------------------
# CLI (through the module's own parser; `paperlab powerinfer2 ...` once wired)


def cli(*argv: str) -> int:
    from paperlab.cli import main

    return main(["powerinfer2", *argv])


def test_cli_convert_plan_generate(tmp_path: Path, capsys):
    model = relu_model(shift=-0.02)
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "engine"
    assert (
        cli(
            "convert",
            str(tmp_path / "model"),
            str(out),
            "--profile-batches",
            "1",
            "--predictor-steps",
            "5",
            "--predictor-rank",
            "4",
            "--no-progress",
        )
        == 0
    )
    assert {FILES[k] for k in FILES} <= {p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    assert cli("plan", str(out), "--memory-budget", "30%") == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["hot_bytes"] <= 0.5 * plan["budget_bytes"] and len(plan["hot"]) == LAYERS
    assert (
        cli(
            "generate",
            str(out),
            "--prompt",
            "def f(",
            "--memory-budget",
            "30%",
            "--max-new-tokens",
            "8",
            "--stats",
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "def f(" in printed and "tokens/s" in printed and "peak FFN resident" in printed
    for argv, words in [
        (["generate", str(tmp_path), "--prompt", "x"], "convert"),
        (["generate", str(out), "--prompt", "x", "--memory-budget", "lots"], "memory_budget"),
        (["plan", str(out), "--memory-budget", "0%"], "memory_budget"),
        (["convert", str(tmp_path / "nothing"), str(tmp_path / "e2")], "model.safetensors"),
        (["generate", str(out), "--prompt", "x"], "truncated"),  # after _damage below
    ]:
        if words == "truncated":
            _damage(out / FILES["bundles"], "truncated")
        assert cli(*argv) == 2  # a user mistake: one line on stderr, no traceback
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_train_writes_a_relu_checkpoint(tmp_path: Path, capsys):
    from paperlab.core.llama import Llama

    assert cli("train", str(tmp_path / "m"), "--scale", "tiny", "--no-progress") == 0
    model = Llama.from_pretrained(tmp_path / "m")
    assert model.config.hidden_act == "relu"
    assert "val loss" in capsys.readouterr().out
    for argv, words in [
        (["train", str(tmp_path / "m"), "--scale", "tiny"], "already holds"),
        (["train", str(tmp_path / "m2"), "--scale", "huge"], "unknown scale"),
    ]:
        assert cli(*argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    assert not (tmp_path / "m2").exists()

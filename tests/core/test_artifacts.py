"""The artifact cache: memory per run, disk keyed by spec + version, release frees everything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from paperlab.core.artifacts import (
    ArtifactCache,
    FolderCodec,
    JSONCodec,
    ModuleCodec,
    canonical,
    clear_entries,
    default_cache_dir,
    list_entries,
    spec_key,
)


@dataclass(frozen=True)
class Spec:
    steps: int
    lr: float


def counting(value):
    calls = []

    def build():
        calls.append(1)
        return value() if callable(value) else value

    return build, calls


def test_memory_hit_returns_the_same_object_and_spec_changes_rebuild():
    build, calls = counting(lambda: object())
    with ArtifactCache() as cache:
        a = cache.get("thing", Spec(10, 1e-3), build)
        assert cache.get("thing", Spec(10, 1e-3), build) is a
        b = cache.get("thing", Spec(11, 1e-3), build)
        assert b is not a and len(calls) == 2
        assert cache.hits == {"memory": 1, "disk": 0, "built": 2}


def test_canonical_is_order_free_and_refuses_unkeyable_specs():
    assert canonical({"a": 1, "b": (2, 3.0)}) == canonical({"b": [2, 3.0], "a": 1})
    assert canonical(Spec(1, 0.5)) != canonical({"steps": 1, "lr": 0.5})  # the type counts
    assert spec_key("m", Spec(1, 0.5), "1.0") != spec_key("m", Spec(1, 0.5), "1.1")  # version
    with pytest.raises(TypeError, match="cannot key"):
        canonical(object())


def test_bad_name_is_refused():
    with ArtifactCache() as cache, pytest.raises(ValueError, match="artifact name"):
        cache.get("a/b", 1, lambda: 1)


def test_disk_cache_survives_the_run_and_a_second_cache_loads_it(tmp_path: Path):
    build, calls = counting({"acc": 0.9})
    with ArtifactCache(tmp_path) as first:
        assert first.get("figures", Spec(1, 0.1), build, codec=JSONCodec()) == {"acc": 0.9}
    with ArtifactCache(tmp_path) as second:
        assert second.get("figures", Spec(1, 0.1), build, codec=JSONCodec()) == {"acc": 0.9}
        assert second.hits["disk"] == 1 and len(calls) == 1
    (entry,) = list_entries(tmp_path)
    assert entry.name == "figures" and "Spec(" in entry.spec and entry.bytes > 0
    assert clear_entries(tmp_path) == 1 and list_entries(tmp_path) == []


def test_without_a_codec_nothing_goes_to_disk(tmp_path: Path):
    with ArtifactCache(tmp_path) as cache:
        cache.get("server", 1, lambda: object())
    assert list_entries(tmp_path) == []


def test_a_damaged_entry_is_rebuilt_not_trusted(tmp_path: Path):
    build, calls = counting([1, 2])
    with ArtifactCache(tmp_path) as cache:
        cache.get("v", 0, build, codec=JSONCodec())
    (entry,) = list_entries(tmp_path)
    (entry.path / "value.json").write_text("{not json")
    with ArtifactCache(tmp_path) as cache:
        assert cache.get("v", 0, build, codec=JSONCodec()) == [1, 2]
    assert len(calls) == 2
    assert json.loads((list_entries(tmp_path)[0].path / "value.json").read_text()) == [1, 2]


def test_a_failed_build_writes_nothing(tmp_path: Path):
    def build():
        raise RuntimeError("training diverged")

    with ArtifactCache(tmp_path) as cache, pytest.raises(RuntimeError):
        cache.get("v", 0, build, codec=JSONCodec())
    assert list_entries(tmp_path) == [] and not list(tmp_path.glob("*/.tmp-*"))


def test_module_codec_round_trips_weights_and_info(tmp_path: Path):
    def fresh() -> nn.Module:
        return nn.Linear(3, 2)

    def build():
        torch.manual_seed(0)
        return fresh(), {"loss": 0.25}

    codec = ModuleCodec(build=fresh, kind="test-linear")
    with ArtifactCache(tmp_path) as cache:
        model, info = cache.get("linear", 0, build, codec=codec)
    with ArtifactCache(tmp_path) as cache:
        loaded, info2 = cache.get("linear", 0, lambda: pytest.fail("rebuilt"), codec=codec)
    assert info2 == info == {"loss": 0.25} and not loaded.training
    assert torch.equal(loaded.weight, model.weight) and torch.equal(loaded.bias, model.bias)


def test_folder_codec_and_release_removes_temp_folders_and_runs_cleanups(tmp_path: Path):
    stopped = []
    cache = ArtifactCache(tmp_path / "disk")

    def build() -> Path:
        folder = cache.tempdir("paperlab-test-")
        (folder / "weights.bin").write_bytes(b"abc")
        return folder

    first = cache.get("zoo", 0, build, codec=FolderCodec())
    cache.on_release(lambda: stopped.append("server"))
    assert (first / "weights.bin").read_bytes() == b"abc"
    cache.release()
    assert stopped == ["server"] and not first.exists()
    again = ArtifactCache(tmp_path / "disk")
    path = again.get("zoo", 0, lambda: pytest.fail("rebuilt"), codec=FolderCodec())
    assert (path / "weights.bin").read_bytes() == b"abc"
    again.release()
    again.release()  # idempotent


def test_a_failing_cleanup_does_not_stop_the_others():
    ran = []
    cache = ArtifactCache()
    cache.on_release(lambda: ran.append("first"))
    cache.on_release(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cache.release()
    assert ran == ["first"]


@pytest.mark.parametrize(("value", "expect"), [("off", None), ("", None), ("/x/y", Path("/x/y"))])
def test_default_cache_dir_follows_the_environment(monkeypatch, value, expect):
    monkeypatch.setenv("PAPERLAB_CACHE_DIR", value)
    assert default_cache_dir() == expect

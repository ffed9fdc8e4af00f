"""The recaptioning pipeline: sources (folder, tar shard, JSONL / Parquet manifest), records
with the released columns, unreadable images listed not fatal, missing manifest columns named,
resuming after a kill (injected mid-run, and a torn last line) with no duplicates and no
losses, Parquet shards, and the same batch function under Ray Data's local mode."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest
import torch

from paperlab.core.data.image_io import save_png
from paperlab.core.errors import UserError
from paperlab.papers.recap.pipeline import (
    RECORD_COLUMNS,
    caption_batch,
    caption_source,
    list_items,
    read_records,
)


def describe(images: torch.Tensor) -> list[str]:
    """A deterministic stand-in captioner: the image's mean colour, as words."""
    means = images.mean(dim=(2, 3))
    return [f"mean {r:.2f} {g:.2f} {b:.2f}" for r, g, b in means.tolist()]


class Boom(Exception):
    pass


class DiesAfter:
    """A captioner that raises after ``n`` batches (a kill in the middle of a run)."""

    def __init__(self, n: int):
        self.left = n

    def __call__(self, images: torch.Tensor) -> list[str]:
        if self.left == 0:
            raise Boom
        self.left -= 1
        return describe(images)


def _folder(root: Path, n: int = 10, *, broken: tuple[int, ...] = ()) -> Path:
    folder = root / "images"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        if i in broken:
            (folder / f"{i:03d}.png").write_bytes(b"not a png")
        else:
            save_png(torch.rand(3, 8, 8, generator=g), folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(f"web caption {i}")
    return folder


def _keys(out: Path) -> list[str]:
    return [r["key"] for r in read_records(out)]


def test_folder_records_have_the_released_columns(tmp_path):
    src = _folder(tmp_path, 5)
    summary = caption_source(
        src, tmp_path / "out", describe, image_size=8, batch_size=2, shard_size=3, progress=False
    )
    records = read_records(tmp_path / "out")
    assert [r["key"] for r in records] == ["000", "001", "002", "003", "004"]
    assert set(records[0]) == set(RECORD_COLUMNS)
    assert records[1]["org_caption"] == "web caption 1"
    assert records[1]["re_caption"].startswith("mean ")
    data = (src / "001.png").read_bytes()
    assert records[1]["sha256"] == hashlib.sha256(data).hexdigest()
    assert Path(records[1]["url"]) == (src / "001.png").resolve()
    assert (
        summary.captioned == 5
        and summary.new == 5
        and summary.shards
        == [
            "part-00000.jsonl",
            "part-00001.jsonl",
        ]
    )
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["captioned"] == 5


def test_unreadable_images_are_counted_and_listed(tmp_path):
    src = _folder(tmp_path, 6, broken=(2, 4))
    summary = caption_source(
        src, tmp_path / "out", describe, image_size=8, batch_size=4, progress=False
    )
    assert _keys(tmp_path / "out") == ["000", "001", "003", "005"]
    assert sorted(b["key"] for b in summary.unreadable) == ["002", "004"]
    report = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert report["unreadable"] == 2 and report["unreadable_list"][0]["error"]


def test_a_killed_run_resumes_without_duplicates_or_losses(tmp_path):
    src, out = _folder(tmp_path, 11), tmp_path / "out"
    with pytest.raises(Boom):  # dies while captioning its 4th batch
        caption_source(
            src, out, DiesAfter(3), image_size=8, batch_size=2, shard_size=4, progress=False
        )
    partial = sorted(p.name for p in out.glob(".part-*.jsonl"))
    assert (out / "part-00000.jsonl").is_file() and partial == [".part-00001.jsonl"]
    seen = []
    rerun = caption_source(
        src,
        out,
        lambda x: seen.append(len(x)) or describe(x),
        image_size=8,
        batch_size=2,
        shard_size=4,
        progress=False,
    )
    assert rerun.new == 11 - 6 and sum(seen) == 5  # nothing captioned twice
    keys = _keys(out)
    assert keys == [f"{i:03d}" for i in range(11)]  # nothing lost, in order
    assert not list(out.glob(".part-*"))
    again = caption_source(
        src, out, DiesAfter(0), image_size=8, batch_size=2, shard_size=4, progress=False
    )
    assert again.new == 0 and again.captioned == 11  # a finished run repeats nothing


def test_a_torn_last_line_loses_only_that_batch(tmp_path):
    src, out = _folder(tmp_path, 6), tmp_path / "out"
    with pytest.raises(Boom):
        caption_source(
            src, out, DiesAfter(2), image_size=8, batch_size=2, shard_size=6, progress=False
        )
    partial = out / ".part-00000.jsonl"
    assert len(partial.read_text().splitlines()) == 4
    with open(partial, "a") as f:  # a kill in the middle of writing the next batch
        f.write('{"key": "004", "url": "x", "org_cap')
    rerun = caption_source(
        src, out, describe, image_size=8, batch_size=2, shard_size=6, progress=False
    )
    assert rerun.new == 2
    assert _keys(out) == [f"{i:03d}" for i in range(6)]


def test_another_source_in_the_same_folder_is_refused(tmp_path):
    src, out = _folder(tmp_path, 3), tmp_path / "out"
    caption_source(src, out, describe, image_size=8, progress=False)
    with pytest.raises(UserError, match="another source or layout"):
        caption_source(src, out, describe, image_size=8, shard_size=2, progress=False)


def test_tar_shard_source(tmp_path):
    src = _folder(tmp_path, 3)
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(3):
            tar.add(src / f"{i:03d}.png", arcname=f"sample{i}.png")
            tar.add(src / f"{i:03d}.txt", arcname=f"sample{i}.txt")
        meta = tmp_path / "meta.json"
        meta.write_text(json.dumps({"url": "https://example.org/0.png"}))
        tar.add(meta, arcname="sample0.json")
    items = list_items(shard)
    assert [r["key"] for r in items] == ["sample0", "sample1", "sample2"]
    assert items[0]["url"] == "https://example.org/0.png"
    caption_source(shard, tmp_path / "out", describe, image_size=8, progress=False)
    records = read_records(tmp_path / "out")
    assert [r["org_caption"] for r in records] == [f"web caption {i}" for i in range(3)]


def test_manifests_jsonl_and_parquet_and_missing_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src = _folder(tmp_path, 4)
    rows = [{"url": f"images/{i:03d}.png", "caption": f"alt {i}"} for i in range(4)]
    jsonl = tmp_path / "manifest.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["org_caption"] for r in list_items(jsonl)] == [f"alt {i}" for i in range(4)]
    parquet = tmp_path / "manifest.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    caption_source(parquet, tmp_path / "out", describe, image_size=8, fmt="parquet", progress=False)
    assert (tmp_path / "out" / "part-00000.parquet").is_file()
    assert [r["org_caption"] for r in read_records(tmp_path / "out")] == [
        f"alt {i}" for i in range(4)
    ]
    assert src.is_dir()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"path": "a.png"}) + "\n")
    with pytest.raises(UserError, match="url, org_caption or caption or text"):
        list_items(bad)


def test_caption_batch_is_one_function_for_both_engines(tmp_path):
    src = _folder(tmp_path, 3, broken=(1,))
    rows = list_items(src)
    batch = {c: [r[c] for r in rows] for c in rows[0]}
    out = caption_batch(batch, captioner=describe, image_size=8)
    assert list(out["key"]) == ["000", "001", "002"]
    assert out["error"][1] and not out["error"][0] and out["re_caption"][1] == ""


def test_ray_engine_in_local_mode(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray Data is an optional extra: paperlab[ray]")
    pytest.importorskip("ray.data")
    src = _folder(tmp_path, 5, broken=(3,))

    def local_describe(images: torch.Tensor) -> list[str]:  # pickled by value for the workers
        means = images.mean(dim=(2, 3))
        return [f"mean {r:.2f} {g:.2f} {b:.2f}" for r, g, b in means.tolist()]

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        summary = caption_source(
            src,
            tmp_path / "ray",
            local_describe,
            image_size=8,
            batch_size=2,
            shard_size=3,
            engine="ray",
            progress=False,
        )
    finally:
        ray.shutdown()
    caption_source(
        src, tmp_path / "emb", describe, image_size=8, batch_size=2, shard_size=3, progress=False
    )
    assert read_records(tmp_path / "ray") == read_records(tmp_path / "emb")
    assert [b["key"] for b in summary.unreadable] == ["003"]

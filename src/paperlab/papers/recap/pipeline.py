"""The recaptioning pipeline: images -> a captioner -> records with Recap-DataComp-1B's columns.

Sources (:func:`list_items`): a folder of images (a sidecar ``<name>.txt`` holds the original
caption), a WebDataset tar shard (members ``<key>.<image ext>``, ``<key>.txt``, optional
``<key>.json`` with a ``url``; read with the standard library's ``tarfile``), or a Parquet / JSONL
manifest with a ``url`` column (paths, relative to the manifest) and an ``org_caption`` column
(``caption`` or ``text`` are accepted in its place).

Records: ``key``, ``url``, ``org_caption``, ``re_caption`` (the released columns of
Recap-DataComp-1B) and ``sha256`` of the image bytes, in shards of ``shard_size`` inputs
(``part-00000.jsonl`` or ``.parquet``). Every batch goes through one function,
:func:`caption_batch`, whether the loop runs here (``engine="embedded"``) or as a Ray Data
``map_batches`` over the same rows (``engine="ray"``).

Resumable: each finished batch is appended to its shard's ``.part-<i>.jsonl`` and fsynced; a
finished shard is written whole (atomically) and its partial file removed. A kill loses at most
the batch in flight (a torn last line is dropped); a re-run reads what is there and captions
only the rest. Unreadable images are counted and listed (``part-<i>.errors.jsonl`` and
``summary.json``), never fatal.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlab.core.errors import UserError
from paperlab.core.files import atomic_path, write_text_atomic

RECORD_COLUMNS: tuple[str, ...] = ("key", "url", "org_caption", "re_caption", "sha256")
CAPTION_COLUMNS: tuple[str, ...] = ("org_caption", "caption", "text")  # first found is used
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
FORMATS: tuple[str, ...] = ("jsonl", "parquet")
ENGINES: tuple[str, ...] = ("embedded", "ray")
STATE_FILE = "recap_state.json"
Captioner = Callable[[torch.Tensor], list[str]]  # (B, 3, H, W) in [0, 1] -> one caption each


# ---------------------------------------------------------------------------------------------
# Sources


def list_items(src: str | os.PathLike) -> list[dict[str, str]]:
    """The inputs of ``src`` as rows ``{key, url, org_caption, source}`` in a fixed order;
    ``source`` locates the image bytes (a path, or ``tar:<path>::<member>``)."""
    path = Path(src)
    if path.is_dir():
        return _folder_items(path)
    if not path.is_file():
        raise UserError(f"SRC: {path} is neither a folder nor a file")
    if path.name.endswith((".tar", ".tar.gz", ".tgz")):
        return _tar_items(path)
    if path.suffix in (".jsonl", ".parquet"):
        return _manifest_items(path)
    raise UserError(f"SRC: {path}: expected a folder, a .tar shard, or a .jsonl/.parquet manifest")


def _folder_items(folder: Path) -> list[dict[str, str]]:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    rows = []
    for p in files:
        sidecar = p.with_suffix(".txt")
        caption = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
        rows.append(
            {"key": p.stem, "url": str(p.resolve()), "org_caption": caption, "source": str(p)}
        )
    if not rows:
        raise UserError(f"SRC: {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return rows


def _tar_items(path: Path) -> list[dict[str, str]]:
    """WebDataset convention: a sample is the members sharing a key (the name up to the first
    dot of the base name, with its folder)."""
    samples: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                if not m.isfile():
                    continue
                folder, _, base = m.name.rpartition("/")
                stem, dot, ext = base.partition(".")
                key = f"{folder}/{stem}" if folder else stem
                s = samples.setdefault(key, {})
                ext = "." + ext.lower() if dot else ""
                if ext in IMAGE_SUFFIXES:
                    s["image"] = m.name
                elif ext in (".txt", ".json"):
                    s[ext] = tar.extractfile(m).read().decode("utf-8", errors="replace")
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"SRC: {path}: not a readable tar shard ({e})") from None
    rows = []
    for key, s in samples.items():
        if "image" not in s:
            continue
        url = f"{path}::{s['image']}"
        if ".json" in s:
            try:
                url = json.loads(s[".json"]).get("url", url)
            except (json.JSONDecodeError, AttributeError):
                pass
        rows.append(
            {
                "key": key,
                "url": str(url),
                "org_caption": s.get(".txt", "").strip(),
                "source": f"tar:{path}::{s['image']}",
            }
        )
    if not rows:
        raise UserError(f"SRC: {path} holds no images")
    return rows


def _manifest_items(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises its own error types
            raise UserError(f"SRC: {path}: not a readable Parquet file ({e})") from None
        columns, records = table.column_names, table.to_pylist()
    else:
        records = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"SRC: {path} line {n}: not valid JSON") from None
            if not isinstance(row, dict):
                raise UserError(f"SRC: {path} line {n}: not a JSON object")
            records.append(row)
        columns = list(dict.fromkeys(k for r in records for k in r))
    caption_col = next((c for c in CAPTION_COLUMNS if c in columns), None)
    missing = (["url"] if "url" not in columns else []) + (
        [" or ".join(CAPTION_COLUMNS)] if caption_col is None else []
    )
    if missing:
        raise UserError(f"SRC: {path}: the manifest lacks the column(s) {', '.join(missing)}")
    rows = []
    for i, r in enumerate(records):
        url = str(r.get("url") or "")
        local = Path(url) if Path(url).is_absolute() else path.parent / url
        key = str(r["key"]) if r.get("key") is not None else f"{i:09d}"
        caption = "" if r.get(caption_col) is None else str(r[caption_col])
        rows.append({"key": key, "url": url, "org_caption": caption, "source": str(local)})
    if len({r["key"] for r in rows}) != len(rows):
        raise UserError(f"SRC: {path}: the key column holds duplicates")
    return rows


def read_source(source: str) -> bytes:
    """The bytes a row's ``source`` points at (a file, or a member of a tar shard)."""
    if source.startswith("tar:"):
        tar_path, _, member = source[4:].partition("::")
        with tarfile.open(tar_path) as tar:
            f = tar.extractfile(member)
            if f is None:
                raise OSError(f"{member} is not a file in {tar_path}")
            return f.read()
    return Path(source).read_bytes()


def decode_image(data: bytes, size: int) -> torch.Tensor:
    """Image bytes -> (3, size, size) float32 in [0, 1] (Pillow; Lanczos resize)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.LANCZOS)
        array = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


# ---------------------------------------------------------------------------------------------
# The per-batch function (the same one for both engines)


def caption_batch(
    batch: dict[str, Sequence[str]], *, captioner: Captioner, image_size: int
) -> dict[str, np.ndarray]:
    """Caption one batch of rows ``{key, url, org_caption, source[, shard]}``: read and hash
    each image, caption the readable ones in one call, and return the columns of
    ``RECORD_COLUMNS`` plus ``error`` ("" when the image was read) and the pass-through ones."""
    n = len(batch["key"])
    images, ok, digests, errors = [], [], [""] * n, [""] * n
    for i in range(n):
        try:
            data = read_source(str(batch["source"][i]))
            digests[i] = hashlib.sha256(data).hexdigest()
            images.append(decode_image(data, image_size))
            ok.append(i)
        except Exception as e:  # an unreadable image is counted and listed, never fatal
            errors[i] = f"{type(e).__name__}: {e}"[:300]
    captions = [""] * n
    if ok:
        for i, text in zip(ok, captioner(torch.stack(images)), strict=True):
            captions[i] = text
    out = {c: [str(v) for v in batch[c]] for c in batch if c not in ("re_caption", "sha256")}
    out.update(re_caption=captions, sha256=digests, error=errors)
    return {k: np.array(v, dtype=object) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Shards on disk


def _shard_name(i: int, ext: str) -> str:
    return f"part-{i:05d}.{ext}"


def _read_partial(path: Path) -> list[dict[str, str]]:
    """The finished batches' rows of a partial shard; a torn last line (a kill mid-write) is
    cut off the file so the next append starts clean."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    good = data[: data.rfind(b"\n") + 1]
    if len(good) != len(data):
        with open(path, "r+b") as f:
            f.truncate(len(good))
    rows = []
    for line in good.decode("utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # cannot happen for fsynced whole lines; be safe
            continue
    return rows


def _write_shard(path: Path, rows: list[dict[str, str]], fmt: str) -> None:
    records = [{c: r[c] for c in RECORD_COLUMNS} for r in rows]
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            columns = {c: [r[c] for r in records] for c in RECORD_COLUMNS}
            pq.write_table(pa.table(columns), tmp)
        else:
            tmp.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8"
            )


@dataclass
class CaptionSummary:
    """What a ``caption`` run did (``summary.json`` holds the totals over every run)."""

    images: int = 0  # inputs in the source
    captioned: int = 0  # records written, over every run into this folder
    unreadable: list[dict[str, str]] = field(default_factory=list)  # key, url, error
    new: int = 0  # inputs processed by this run
    seconds: float = 0.0  # this run's captioning time
    shards: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.new / self.seconds if self.seconds > 0 else 0.0


class _ShardWriter:
    """Appends finished rows to their shard's partial file, finishes full shards."""

    def __init__(self, out: Path, items: list[dict[str, str]], shard_size: int, fmt: str):
        self.out, self.fmt, self.shard_size = out, fmt, shard_size
        self.sizes = [len(items[i : i + shard_size]) for i in range(0, len(items), shard_size)]
        self.rows: dict[int, list[dict[str, str]]] = {}

    def partial(self, i: int) -> Path:
        return self.out / f".part-{i:05d}.jsonl"

    def final(self, i: int) -> Path:
        return self.out / _shard_name(i, self.fmt)

    def errors_file(self, i: int) -> Path:
        return self.out / f"part-{i:05d}.errors.jsonl"

    def done_keys(self, i: int) -> set[str]:
        if self.final(i).is_file():
            return {"*"}  # every key of the shard
        self.rows[i] = _read_partial(self.partial(i))
        return {r["key"] for r in self.rows[i]}

    def append(self, rows: list[dict[str, str]]) -> None:
        by_shard: dict[int, list[dict[str, str]]] = {}
        for r in rows:
            by_shard.setdefault(int(r["shard"]), []).append(r)
        for i, new in by_shard.items():
            with open(self.partial(i), "ab") as f:  # one write per batch, then fsync
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new).encode())
                f.flush()
                os.fsync(f.fileno())
            self.rows.setdefault(i, []).extend(new)
            if len(self.rows[i]) >= self.sizes[i]:
                self.finish(i)

    def finish(self, i: int) -> None:
        rows = self.rows.pop(i)
        errors = [r for r in rows if r["error"]]
        write_text_atomic(
            self.errors_file(i),
            "".join(
                json.dumps({"key": r["key"], "url": r["url"], "error": r["error"]}) + "\n"
                for r in errors
            ),
        )
        _write_shard(self.final(i), [r for r in rows if not r["error"]], self.fmt)
        self.partial(i).unlink(missing_ok=True)


def _check_state(out: Path, src: Path, n: int, shard_size: int, fmt: str) -> None:
    """A folder belongs to one source and layout: refuse to mix two runs' shards."""
    state = {"source": str(src.resolve()), "items": n, "shard_size": shard_size, "format": fmt}
    path = out / STATE_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old != state:
            diff = ", ".join(
                f"{k} {old.get(k)!r} -> {v!r}" for k, v in state.items() if old.get(k) != v
            )
            raise UserError(
                f"--out {out} holds a caption run of another source or layout ({diff}); "
                "use a new folder or the same arguments"
            )
    else:
        write_text_atomic(path, json.dumps(state, indent=1))


def _embedded_batches(
    rows: list[dict[str, str]], fn: Callable, batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo : lo + batch_size]
        yield fn({c: [r[c] for r in chunk] for c in chunk[0]})


def _ray_batches(
    rows: list[dict[str, str]], fn: Callable, batch_size: int, num_cpus: int | None
) -> Iterator[dict[str, np.ndarray]]:
    """The same per-batch function as a Ray Data ``map_batches`` over the rows (local Ray if
    none is running; an existing cluster when ``ray.init`` was called before)."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UserError(
            "--engine ray needs Ray Data: pip install 'paperlab[ray]' (or use --engine embedded)"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        ds = ray.data.from_items(rows).map_batches(fn, batch_size=batch_size, batch_format="numpy")
        yield from ds.iter_batches(batch_size=batch_size, batch_format="numpy")
    finally:
        if started:
            ray.shutdown()


def caption_source(
    src: str | os.PathLike,
    out: str | os.PathLike,
    captioner: Captioner,
    *,
    image_size: int,
    batch_size: int = 32,
    shard_size: int = 1000,
    fmt: str = "jsonl",
    engine: str = "embedded",
    num_cpus: int | None = None,
    progress: bool = True,
) -> CaptionSummary:
    """Recaption every image of ``src`` into shards under ``out`` (resumable; see the module
    docstring). Returns the run's :class:`CaptionSummary` and writes ``out/summary.json``."""
    from tqdm import tqdm

    if batch_size < 1 or shard_size < 1:
        raise UserError(f"--batch-size ({batch_size}) and --shard-size ({shard_size}) must be >= 1")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r}: choose {' or '.join(ENGINES)}")
    src, out = Path(src), Path(out)
    items = list_items(src)
    out.mkdir(parents=True, exist_ok=True)
    _check_state(out, src, len(items), shard_size, fmt)
    writer = _ShardWriter(out, items, shard_size, fmt)
    todo = []
    for i in range(len(writer.sizes)):
        done = writer.done_keys(i)
        if "*" in done:
            continue
        shard_rows = items[i * shard_size : (i + 1) * shard_size]
        todo += [{**r, "shard": str(i)} for r in shard_rows if r["key"] not in done]
        if not todo or todo[-1]["shard"] != str(i):
            writer.rows.setdefault(i, [])
            if len(writer.rows[i]) >= writer.sizes[i]:
                writer.finish(i)  # complete but not finished (killed between the two)

    def fn(batch: dict[str, Sequence[str]]) -> dict[str, np.ndarray]:
        return caption_batch(batch, captioner=captioner, image_size=image_size)

    summary = CaptionSummary(images=len(items))
    started = time.perf_counter()
    bar = tqdm(total=len(todo), desc="recaption", unit="img", disable=not progress, leave=False)
    batches = (
        _ray_batches(todo, fn, batch_size, num_cpus)
        if engine == "ray" and todo
        else _embedded_batches(todo, fn, batch_size)
    )
    try:
        for result in batches:
            cols = {k: list(v) for k, v in result.items()}
            rows = [{k: str(cols[k][j]) for k in cols} for j in range(len(cols["key"]))]
            writer.append(rows)
            summary.new += len(rows)
            bar.update(len(rows))
            rate = summary.new / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{rate:.1f} img/s", refresh=False)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - started
    return _summarise(out, writer, summary)


def _summarise(out: Path, writer: _ShardWriter, summary: CaptionSummary) -> CaptionSummary:
    for i in range(len(writer.sizes)):
        if not writer.final(i).is_file():
            continue
        summary.shards.append(writer.final(i).name)
        summary.captioned += len(read_records(writer.final(i)))
        for line in writer.errors_file(i).read_text().splitlines():
            summary.unreadable.append(json.loads(line))
    report = {
        "images": summary.images,
        "captioned": summary.captioned,
        "unreadable": len(summary.unreadable),
        "unreadable_list": summary.unreadable,
        "shards": summary.shards,
        "last_run": {"images": summary.new, "seconds": round(summary.seconds, 3)},
        "last_run_images_per_second": round(summary.images_per_second, 3),
    }
    write_text_atomic(out / "summary.json", json.dumps(report, indent=1))
    return summary


def read_records(path: str | os.PathLike) -> list[dict[str, str]]:
    """The records of one shard (``.jsonl`` or ``.parquet``) or of every shard in a folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("part-*.jsonl")) + sorted(path.glob("part-*.parquet"))
        files = [f for f in files if not f.name.endswith(".errors.jsonl")]
        if not files:
            raise UserError(f"{path}: no caption shards (part-*.jsonl / part-*.parquet) in it")
        return [r for f in sorted(files) for r in read_records(f)]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if not path.is_file():
        raise UserError(f"{path}: no such shard")
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]

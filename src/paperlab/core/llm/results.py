"""Results appended to JSONL as they complete, and `--resume` that loses and repeats nothing.

Every finished item is one line, written with a single `write` call, flushed and fsync'ed
before the next is started counting as done. A run killed at any instant (even SIGKILL in the
middle of a write) leaves complete lines plus at most one partial last line; `resume` cuts that
line off and skips every item whose id is already written.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from paperlab.core.errors import UserError


def read_jsonl(path: str | os.PathLike, *, id_key: str = "id") -> list[dict[str, Any]]:
    """Input items, one JSON object per line; an item without `id_key` gets its line number
    (1-based). A broken line is one error naming the file and line."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: no such file")
    items, seen = [], set()
    for n, raw in enumerate(file.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"{file}:{n}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
            ) from None
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{file}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(item, dict):
            raise UserError(f"{file}:{n}: expected a JSON object, got {type(item).__name__}")
        item.setdefault(id_key, n)
        if item[id_key] in seen:
            raise UserError(f"{file}:{n}: duplicate {id_key} {item[id_key]!r}")
        seen.add(item[id_key])
        items.append(item)
    if not items:
        raise UserError(f"{file}: no items")
    return items


class JsonlResults:
    """An append-only JSONL of finished items, keyed by `id_key`."""

    def __init__(self, path: str | os.PathLike, *, resume: bool = False, id_key: str = "id"):
        self.path = Path(path)
        self.id_key = id_key
        self.done: set[Any] = set()
        if self.path.is_dir():
            raise UserError(f"{self.path} is a folder; the output is a JSONL file (e.g. out.jsonl)")
        if self.path.exists():
            if not resume:
                raise UserError(
                    f"{self.path} exists; pass --resume to continue it, or choose another output"
                )
            self._recover()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def _recover(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):  # a line cut short by a kill: drop it, redo its item
            with open(self.path, "r+b") as fh:
                fh.truncate(len(complete))
        for n, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                self.done.add(json.loads(line)[self.id_key])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(
                    f"{self.path}:{n}: not a results line with an {self.id_key!r} "
                    "(is this the right --out file?)"
                ) from None

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done.add(record[self.id_key])

    def records(self) -> list[dict[str, Any]]:
        self._fh.flush()
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlResults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_concurrency(concurrency: int) -> None:
    # a semaphore of 0 never opens: the run would hang forever
    if not isinstance(concurrency, int) or concurrency < 1:
        raise UserError(f"concurrency must be an integer >= 1, got {concurrency!r}")


async def gather_bounded(
    items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]], concurrency: int
) -> list[Any]:
    """`[await fn(x) for x in items]`, at most `concurrency` at a time, results in order."""
    _check_concurrency(concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def one(x: Any) -> Any:
        async with gate:
            return await fn(x)

    return await asyncio.gather(*(one(x) for x in items))


async def map_to_jsonl(
    items: Iterable[Mapping[str, Any]],
    fn: Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]],
    results: JsonlResults,
    *,
    concurrency: int = 8,
    progress: bool = True,
    desc: str = "items",
) -> tuple[int, list[tuple[Any, str]]]:
    """Run `fn` on every item not yet in `results`, `concurrency` at a time, appending each
    result (with the item's id) as it completes. Returns (number done now, [(id, error)]);
    a failed item is not written, so the next `--resume` retries it."""
    _check_concurrency(concurrency)
    todo = [it for it in items if it[results.id_key] not in results.done]
    gate = asyncio.Semaphore(concurrency)
    failures: list[tuple[Any, str]] = []
    bar = tqdm(total=len(todo), desc=desc, disable=not progress, leave=False)

    async def one(item: Mapping[str, Any]) -> None:
        async with gate:
            try:
                record = dict(await fn(item))
            except UserError as e:
                failures.append((item[results.id_key], str(e)))
                return
            finally:
                bar.update(1)
            record[results.id_key] = item[results.id_key]
            results.append(record)

    try:
        await asyncio.gather(*(one(it) for it in todo))
    finally:
        bar.close()
    return len(todo) - len(failures), failures

"""One artifact cache: a hashable spec -> a built thing (a trained model, a server, a run).

The runner gives every paper's run one :class:`ArtifactCache` (``ctx.cache``) and releases it
when that paper's claims are done: built things are dropped, registered cleanups run (servers
stopped) and the temp folders it handed out are removed. Claims of one paper share what they
build through it instead of module-level dicts:

    model, info = ctx.cache.get("kangaroo-target", spec, build, codec=MODULE_AND_INFO)

With a disk folder (``paperlab reproduce --cache-dir DIR``, default ``~/.cache/paperlab``; or
``PAPERLAB_CACHE_DIR``; ``off`` disables) an artifact that has a ``codec`` is also written to
``DIR/<name>/<key>/`` (key: SHA-256 of the spec's canonical text and the package version), so a
second ``paperlab reproduce`` loads the trained models instead of training again. Writes are
atomic (temp folder, then rename); an unreadable entry is rebuilt, never trusted.
``paperlab cache list|clear`` shows and removes entries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
ENV = "PAPERLAB_CACHE_DIR"


def default_cache_dir() -> Path | None:
    """``$PAPERLAB_CACHE_DIR`` (``off``/empty: no disk cache), else ``~/.cache/paperlab``."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "none", "0") else Path(value)
    return Path.home() / ".cache" / "paperlab"


def canonical(spec: Any) -> str:
    """A stable text for a spec: dataclasses by type name and fields, mappings sorted."""
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
        return f"{type(spec).__name__}({canonical(fields)})"
    if isinstance(spec, Mapping):
        items = sorted((str(k), canonical(v)) for k, v in spec.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(spec, list | tuple):
        return "(" + ", ".join(canonical(v) for v in spec) + ")"
    if isinstance(spec, set | frozenset):
        return "{" + ", ".join(sorted(canonical(v) for v in spec)) + "}"
    if isinstance(spec, float):
        return repr(float(spec))
    if spec is None or isinstance(spec, bool | int | str | Path):
        return repr(spec)
    raise TypeError(f"artifact spec: cannot key a {type(spec).__name__} ({spec!r})")


def spec_key(name: str, spec: Any, version: str | None = None) -> str:
    from paperlab import __version__

    text = f"{name}|{canonical(spec)}|{version or __version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class Codec(Protocol[T]):
    """How an artifact goes to and comes back from a folder (for the disk cache)."""

    def save(self, obj: T, folder: Path) -> None: ...

    def load(self, folder: Path) -> T: ...


@dataclass(frozen=True)
class JSONCodec(Generic[T]):
    """For artifacts that are plain JSON (dicts of figures, lists of results)."""

    def save(self, obj: T, folder: Path) -> None:
        (folder / "value.json").write_text(json.dumps(obj))

    def load(self, folder: Path) -> T:
        return json.loads((folder / "value.json").read_text())


@dataclass(frozen=True)
class ModuleCodec:
    """``(module, info)`` pairs: weights as safetensors, ``info`` as JSON. ``build()``
    must construct the untrained module the weights go into (same shapes)."""

    build: Callable[[], Any]
    kind: str = "artifact"

    def save(self, obj: tuple[Any, dict], folder: Path) -> None:
        from paperlab.core.checkpoint import save_checkpoint

        module, info = obj
        save_checkpoint(folder / "model.safetensors", module, kind=self.kind)
        (folder / "info.json").write_text(json.dumps(info))

    def load(self, folder: Path) -> tuple[Any, dict]:
        from paperlab.core.checkpoint import load_checkpoint

        module = self.build()
        load_checkpoint(folder / "model.safetensors", module, kind=self.kind)
        info = json.loads((folder / "info.json").read_text())
        return module.eval(), info


@dataclass(frozen=True)
class FolderCodec:
    """Artifacts that are a folder on disk (a trained chat model's directory): stored as a
    copy; loaded as the path of that copy (treat it as read-only)."""

    def save(self, obj: Path, folder: Path) -> None:
        shutil.copytree(obj, folder / "data")

    def load(self, folder: Path) -> Path:
        if not (folder / "data").is_dir():
            raise FileNotFoundError(folder / "data")
        return folder / "data"


class ArtifactCache:
    """Built things keyed by ``(name, spec)``: in memory until :meth:`release`, and on disk
    (when a folder is given and the call passes a codec)."""

    def __init__(self, disk_dir: str | os.PathLike | None = None) -> None:
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self._memory: dict[tuple[str, str], Any] = {}
        self._cleanups: list[Callable[[], Any]] = []
        self._temp_dirs: list[Path] = []
        self.hits = {"memory": 0, "disk": 0, "built": 0}

    def __enter__(self) -> ArtifactCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def get(
        self,
        name: str,
        spec: Any,
        build: Callable[[], T],
        *,
        codec: Codec[T] | None = None,
    ) -> T:
        """The artifact ``name`` for ``spec``: from memory, else from disk, else ``build()``.
        ``spec`` is anything :func:`canonical` can write (dataclasses, tuples, numbers, ...)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"artifact name {name!r}: a non-empty name without '/'")
        key = (name, canonical(spec))
        if key in self._memory:
            self.hits["memory"] += 1
            return self._memory[key]
        folder = None
        if self.disk_dir is not None and codec is not None:
            folder = self.disk_dir / name / spec_key(name, spec)
            value = self._load(folder, codec)
            if value is not None:
                self.hits["disk"] += 1
                self._memory[key] = value
                return value
        value = build()
        self.hits["built"] += 1
        self._memory[key] = value
        if folder is not None:
            self._store(folder, codec, value, name, spec)
        return value

    def _load(self, folder: Path, codec: Codec) -> Any:
        if not (folder / "entry.json").is_file():
            return None
        try:
            return codec.load(folder)
        except Exception:  # damaged or from an incompatible build: rebuild, never trust it
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def _store(self, folder: Path, codec: Codec, value: Any, name: str, spec: Any) -> None:
        from paperlab import __version__

        tmp = folder.parent / f".tmp-{uuid.uuid4().hex[:12]}"
        try:
            tmp.mkdir(parents=True)
            codec.save(value, tmp)
            entry = {"name": name, "spec": canonical(spec), "version": __version__}
            entry["created"] = time.strftime("%Y-%m-%d %H:%M:%S")
            (tmp / "entry.json").write_text(json.dumps(entry, indent=1))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except OSError:  # a full or read-only disk costs the cache, not the run
            shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def on_release(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` at :meth:`release` (last registered, first run): stop a server, ..."""
        self._cleanups.append(fn)

    def tempdir(self, prefix: str = "paperlab-") -> Path:
        """A fresh temp folder, removed at :meth:`release`."""
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self._temp_dirs.append(path)
        return path

    def release(self) -> None:
        """Drop every artifact, run the cleanups, remove the temp folders. Idempotent."""
        errors = []
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception as e:  # one failed cleanup must not keep the others from running
                errors.append(e)
        self._memory.clear()
        while self._temp_dirs:
            shutil.rmtree(self._temp_dirs.pop(), ignore_errors=True)
        if errors:
            raise errors[0]


@dataclass(frozen=True)
class Entry:
    name: str
    key: str
    spec: str
    version: str
    created: str
    bytes: int
    path: Path


def list_entries(disk_dir: str | os.PathLike) -> list[Entry]:
    """Every complete entry under a disk cache folder, by name then creation time."""
    root = Path(disk_dir)
    out = []
    for entry_file in sorted(root.glob("*/*/entry.json")):
        folder = entry_file.parent
        try:
            d = json.loads(entry_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        out.append(
            Entry(d["name"], folder.name, d["spec"], d["version"], d["created"], size, folder)
        )
    return sorted(out, key=lambda e: (e.name, e.created))


def clear_entries(disk_dir: str | os.PathLike, name: str | None = None) -> int:
    """Remove entries (all, or those of one artifact name) and stray temp folders; the count."""
    root = Path(disk_dir)
    n = 0
    for e in list_entries(root):
        if name is None or e.name == name:
            shutil.rmtree(e.path, ignore_errors=True)
            n += 1
    for stray in root.glob("*/.tmp-*"):
        shutil.rmtree(stray, ignore_errors=True)
    for sub in root.glob("*"):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    return n

"""The bundle file: every FFN neuron's gate row, up row and down column stored together.

PowerInfer-2 Sec. 4.3 ("flexible neuron loading"): a ReLU neuron that is active needs all three
of its weight vectors (gate_proj row i, up_proj row i, down_proj column i), and one that is not
active needs none of them, so the three are stored next to each other as one *bundle* and one
read fetches a neuron. Within a layer the bundles are written in a given order; the planner's
hot-first order (descending activation frequency) puts the hot neurons at the front of each
layer, so loading them at start-up is one sequential read and cold misses are short reads.

File format (all integers little-endian):

    0   8 B   magic  b"PI2BNDL1"
    8   u32   version (1)
    12  u32   header length H (bytes of JSON)
    16  u32   CRC-32 of the JSON header
    20  H B   JSON: n_layers, ffn_hidden, dim, dtype ("float32"), bundle_bytes, data_offset,
              layer_stride, file_bytes, order (per layer: file position -> neuron id),
              layer_crc32 (per layer, of its ffn_hidden * bundle_bytes data bytes)
    data_offset (4096-aligned): layer l at data_offset + l * layer_stride (4096-aligned), its
              bundles in file order, each (3, dim) float32 = gate | up | down, contiguous.

Reads are plain ``os.preadv`` calls: one per run of contiguous positions (coalesced), scattered
straight into the caller's buffers (the cache's slots) with no extra copy. So that the memory
budget is real, reads must not stay in the OS page cache: the file is opened with
``POSIX_FADV_RANDOM`` (no readahead: a 3 KB read stays 3 KB, neighbours are not pulled in) and
every range read is dropped afterwards with ``POSIX_FADV_DONTNEED`` (rounded out to whole pages:
Linux keeps partial pages). ``page_cache_bytes`` measures what is left (``mincore``).
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from paperlab.core.checkpoint import read_safetensors_metadata, save_safetensors_atomic
from paperlab.core.llama import LlamaConfig

FORMAT = "paperlab.powerinfer2/1"
DENSE_KIND = "PowerInfer2Dense"  # the non-FFN weights: a raw tensor file, kind-checked on load
FILES = {
    "config": "engine.json",
    "dense": "model.safetensors",
    "bundles": "bundles.bin",
    "profile": "profile.safetensors",
    "predictors": "predictors.safetensors",
}
MAGIC = b"PI2BNDL1"
VERSION = 1
ALIGN = 4096
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_PREFIX = struct.Struct("<8sIII")  # magic, version, header length, header crc32
_IOV_MAX = 1024  # buffers per preadv call (Linux IOV_MAX)
_KEYS = (
    "n_layers",
    "ffn_hidden",
    "dim",
    "dtype",
    "bundle_bytes",
    "data_offset",
    "layer_stride",
    "file_bytes",
    "order",
    "layer_crc32",
)


class CorruptWeightsError(ValueError):
    """A bundle file that is truncated, of another format, or damaged."""


def _align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


def bundle_matrix(mlp: torch.nn.Module) -> torch.Tensor:
    """(ffn_hidden, 3, dim) float32: per neuron i its gate row, up row and down column."""
    gate, up, down = mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight
    return torch.stack([gate, up, down.t()], dim=1).detach().float().contiguous()


def write_bundles(
    model: torch.nn.Module, path: str | os.PathLike, *, order: Sequence[torch.Tensor] | None = None
) -> Path:
    """Write the FFN weights of a ``Llama`` as a bundle file, each layer's neurons in ``order``
    (per layer: neuron ids, file position -> id; default 0..ffn-1). Atomic: a temp file in the
    same folder, fsync, rename."""
    path = Path(path)
    layers = [layer.mlp for layer in model.layers]
    ffn, dim = layers[0].gate_proj.weight.shape
    orders = [
        torch.arange(ffn) if order is None else torch.as_tensor(o).long()
        for o in order or [None] * len(layers)
    ]
    if len(orders) != len(layers):
        raise ValueError(f"order has {len(orders)} layers, the model {len(layers)}")
    for i, o in enumerate(orders):
        if o.shape != (ffn,) or not torch.equal(o.sort().values, torch.arange(ffn)):
            raise ValueError(f"order[{i}] is not a permutation of 0..{ffn - 1}")
    bundle_bytes = 3 * dim * 4
    blobs = [bundle_matrix(m)[o].numpy().tobytes() for m, o in zip(layers, orders, strict=True)]
    stride = _align(ffn * bundle_bytes)
    header = dict(
        n_layers=len(layers),
        ffn_hidden=ffn,
        dim=dim,
        dtype="float32",
        bundle_bytes=bundle_bytes,
        layer_stride=stride,
        order=[o.tolist() for o in orders],
        layer_crc32=[zlib.crc32(b) for b in blobs],
    )
    # data_offset depends on the header's length, which contains it: fix it at a bound first
    text = json.dumps(header | {"data_offset": 0, "file_bytes": 0}).encode()
    data_offset = _align(_PREFIX.size + len(text) + 64)
    header |= {"data_offset": data_offset, "file_bytes": data_offset + len(blobs) * stride}
    text = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(_PREFIX.pack(MAGIC, VERSION, len(text), zlib.crc32(text)) + text)
            for i, blob in enumerate(blobs):
                f.seek(data_offset + i * stride)
                f.write(blob)
            f.truncate(header["file_bytes"])
            f.flush()
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class BundleFile:
    """A validated, open bundle file. ``read`` / ``read_into`` / ``read_layer`` count
    ``bytes_read`` and drop what they read from the page cache (``keep_page_cache=False``)."""

    def __init__(self, path: str | os.PathLike, *, keep_page_cache: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no bundle file at {self.path}; write one with `paperlab powerinfer2 convert`"
            )
        self.keep_page_cache = keep_page_cache
        self.fd = os.open(self.path, os.O_RDONLY)
        try:
            self._parse(os.fstat(self.fd).st_size)
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead
            self.drop_page_cache()  # the header's pages
        except BaseException:
            os.close(self.fd)
            raise
        self.bytes_read = 0
        self.reads = 0  # preadv calls
        self._junk = memoryview(bytearray(0))  # where merged gaps are read to (read_into)
        self._lock = threading.Lock()

    def _corrupt(self, why: str) -> CorruptWeightsError:
        return CorruptWeightsError(
            f"{self.path}: {why}; re-create it with `paperlab powerinfer2 convert`"
        )

    def _parse(self, size: int) -> None:
        prefix = os.pread(self.fd, _PREFIX.size, 0)
        if len(prefix) < _PREFIX.size:
            raise self._corrupt(f"truncated ({size} bytes, no header)")
        magic, version, n, crc = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise self._corrupt(f"not a PowerInfer-2 bundle file (magic {magic[:8]!r})")
        if version != VERSION:
            raise self._corrupt(f"format version {version}, this paperlab reads {VERSION}")
        text = os.pread(self.fd, n, _PREFIX.size) if n <= size else b""
        if len(text) != n or zlib.crc32(text) != crc:
            raise self._corrupt("header damaged or truncated (CRC mismatch)")
        try:
            h = json.loads(text)
            missing = [k for k in _KEYS if k not in h]
            if missing:
                raise ValueError(f"missing {missing}")
            self.n_layers, self.ffn_hidden, self.dim = h["n_layers"], h["ffn_hidden"], h["dim"]
            self.bundle_bytes, self.layer_stride = h["bundle_bytes"], h["layer_stride"]
            self.data_offset, self.layer_crc32 = h["data_offset"], list(h["layer_crc32"])
            order = torch.tensor(h["order"], dtype=torch.long)  # (n_layers, ffn)
            if order.shape != (self.n_layers, self.ffn_hidden) or h["dtype"] != "float32":
                raise ValueError("order shape / dtype")
            if self.bundle_bytes != 12 * self.dim or len(self.layer_crc32) != self.n_layers:
                raise ValueError("bundle size / crc list")
        except (ValueError, TypeError, KeyError) as e:
            raise self._corrupt(f"header is not valid ({str(e)[:80]})") from None
        if not torch.equal(
            order.sort(dim=1).values, torch.arange(self.ffn_hidden).expand_as(order)
        ):
            raise self._corrupt("header order is not a permutation per layer")
        if size != h["file_bytes"]:
            raise self._corrupt(
                f"{size} bytes on disk, the header says {h['file_bytes']} "
                "(truncated or appended to)"
            )
        self.order = order  # (n_layers, ffn): file position -> neuron id
        self.position = order.argsort(dim=1)  # (n_layers, ffn): neuron id -> file position

    # -- sizes -------------------------------------------------------------------------------

    @property
    def layer_bytes(self) -> int:
        """FFN weight bytes of one layer (without alignment padding)."""
        return self.ffn_hidden * self.bundle_bytes

    @property
    def ffn_bytes(self) -> int:
        """FFN weight bytes of the whole model: what a memory budget is a share of."""
        return self.n_layers * self.layer_bytes

    def offset(self, layer: int, position: int = 0) -> int:
        return self.data_offset + layer * self.layer_stride + position * self.bundle_bytes

    # -- reads -------------------------------------------------------------------------------

    # DEVIATION: buffered preadv + fadvise(DONTNEED) instead of direct I/O on UFS, gap merging
    # (max_gap) of ours, and no two-phase gate-then-up/down loading (Sec. 4.3, int4 bundles)
    def read_into(
        self, layer: int, positions: np.ndarray, buffers: Sequence, *, max_gap: int = 0
    ) -> int:
        """Read the bundles at sorted, distinct file ``positions`` of ``layer`` into ``buffers``
        (one writable buffer of bundle_bytes per position). Positions at most ``max_gap``
        bundles apart share one ``preadv``: the gap is read into a scratch buffer and discarded
        (one larger read costs less than two small ones; the gap counts in ``bytes_read``).
        The pages of the whole call are dropped from the page cache once, after its last
        read (one ``posix_fadvise`` per call, not per read). Returns the bytes read."""
        n = len(positions)
        if n == 0:
            return 0
        bb = self.bundle_bytes
        gaps = (np.diff(positions) - 1).tolist()
        if max_gap > 0 and len(self._junk) < max_gap * bb:
            self._junk = memoryview(bytearray(max_gap * bb))
        junk = self._junk
        pos = positions.tolist() if isinstance(positions, np.ndarray) else list(positions)
        total = calls = 0
        iov: list = [buffers[0]]
        first = 0
        # plain-Python loop over neurons with list ops only (no numpy scalars, no new views
        # per neuron): it runs once per missed neuron on the decode path
        for i in range(1, n + 1):
            gap = gaps[i - 1] if i < n else -1
            if i == n or gap > max_gap or len(iov) >= _IOV_MAX - 1:  # flush the run
                want = (pos[i - 1] - pos[first] + 1) * bb  # the run's bundles and gaps
                total += self._preadv(layer, pos[first], iov, drop=False, want=want)
                calls += 1
                if i == n:
                    break
                iov, first = [], i
            elif gap > 0:
                iov.append(junk[: gap * bb])
            iov.append(buffers[i])
        self._drop(self.offset(layer, pos[0]), (pos[-1] - pos[0] + 1) * bb)
        with self._lock:
            self.bytes_read += total
            self.reads += calls
        return total

    def _preadv(
        self, layer: int, position: int, iov: list, *, drop: bool = True, want: int | None = None
    ) -> int:
        off = self.offset(layer, position)
        want = sum(v.nbytes for v in iov) if want is None else want
        got = os.preadv(self.fd, iov, off)
        if got != want:
            raise self._corrupt(f"short read at byte {off} ({got} of {want} bytes)")
        if drop:
            self._drop(off, want)
        return want

    def read(self, layer: int, neurons: torch.Tensor) -> torch.Tensor:
        """(n, 3, dim) bundles of ``neurons`` (ids, any order) of ``layer``, coalesced."""
        neurons = torch.as_tensor(neurons, dtype=torch.long).reshape(-1)
        pos = self.position[layer][neurons]
        sorted_pos, inverse = pos.sort()
        out = np.empty((len(neurons), 3, self.dim), dtype=np.float32)
        self.read_into(layer, sorted_pos.numpy(), [memoryview(row) for row in out])
        return torch.from_numpy(out)[inverse.argsort()]

    def read_layer(self, layer: int) -> torch.Tensor:
        """(ffn, 3, dim) bundles of every neuron of ``layer``, in neuron-id order (one read)."""
        return self.read(layer, torch.arange(self.ffn_hidden))

    def verify(self) -> None:
        """Check every layer's data against its CRC-32 (reads the whole file once)."""
        for layer in range(self.n_layers):
            off = self.offset(layer)
            data = os.pread(self.fd, self.layer_bytes, off)
            self._drop(off, self.layer_bytes)
            if len(data) != self.layer_bytes or zlib.crc32(data) != self.layer_crc32[layer]:
                raise self._corrupt(f"layer {layer} data damaged (CRC mismatch)")

    # -- the page cache ----------------------------------------------------------------------

    def _drop(self, offset: int, length: int) -> None:
        if not self.keep_page_cache:  # whole pages: DONTNEED keeps partial ones
            start = offset // PAGE * PAGE
            os.posix_fadvise(
                self.fd, start, _align(offset + length, PAGE) - start, os.POSIX_FADV_DONTNEED
            )

    def drop_page_cache(self) -> None:
        """Evict the whole file from the OS page cache (``posix_fadvise(DONTNEED)``)."""
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> BundleFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass


def page_cache_bytes(path: str | os.PathLike) -> int | None:
    """Bytes of ``path`` in the OS page cache right now (``mincore`` on a fresh mapping), or
    None where that cannot be asked (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    size = os.path.getsize(path)
    if size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
            if libc.mincore(addr, size, vec) != 0:
                return None
            return int(np.frombuffer(vec, dtype=np.uint8).__and__(1).sum()) * PAGE
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def proc_read_bytes() -> int | None:
    """This process's block-device reads so far (``read_bytes`` of /proc/self/io: what the
    kernel really fetched from storage, readahead included), or None if not available."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# The engine folder


def load_engine_folder(path: str | Path) -> tuple[dict, LlamaConfig, dict[str, torch.Tensor]]:
    """(engine.json, model config, non-FFN weights) of a converted folder."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_file = path / FILES["config"]
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"{path}: not an engine folder (no {FILES['config']}); create "
            "one with `paperlab powerinfer2 convert MODEL_DIR OUT_DIR`"
        )
    try:
        meta = json.loads(meta_file.read_text())
        assert meta.get("format") == FORMAT, f"format {meta.get('format')!r}"
        config = LlamaConfig.from_dict(meta["llama_config"])
        read_safetensors_metadata(path / FILES["dense"], kind=DENSE_KIND)
        state = load_file(str(path / FILES["dense"]))
    except Exception as e:  # any damage to the small files: one line, no traceback
        raise ValueError(
            f"{path}: damaged engine folder ({str(e)[:100]}); re-run convert"
        ) from None
    return meta, config, state


def non_ffn_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of a ``Llama`` except the FFNs' (those go to the bundle file)."""
    state = model.state_dict()
    return {k: v.detach().float().contiguous() for k, v in state.items() if ".mlp." not in k}


def write_engine_files(
    model: torch.nn.Module,
    folder: str | os.PathLike,
    *,
    order: Sequence[torch.Tensor] | None = None,
    meta: dict | None = None,
) -> Path:
    """The model's part of an engine folder: the bundle file (FFN neurons in ``order``), the
    non-FFN weights and engine.json (with ``meta`` added). ``convert`` adds the profile and the
    predictors."""
    from dataclasses import asdict

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bundles(model, folder / FILES["bundles"], order=order)
    save_safetensors_atomic(
        non_ffn_state(model),
        folder / FILES["dense"],
        {"format": "pt", "paperlab_model": DENSE_KIND},
    )
    info = dict(format=FORMAT, llama_config=asdict(model.config), **(meta or {}))
    tmp = folder / f".{FILES['config']}.tmp"
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    tmp.replace(folder / FILES["config"])
    return folder

"""The text corpus: the Python standard library's own `.py` sources of the running interpreter.

Every machine that runs paperlab has it, so nothing is downloaded. Choices:
- root = `sysconfig.get_paths()["stdlib"]`; `site-packages` / `dist-packages` are skipped (they
  differ from machine to machine).
- Test directories (`test`, `tests`, `idle_test`) are left out by default: they are larger than
  the rest (~19 MB vs ~12 MB on CPython 3.11), full of deliberately odd sources (bad encodings,
  huge generated literals), and 12 MB is far more than a 2-core CPU trains on. Pass
  `include_tests=True` to keep them.
- The train/val split is by file, deterministic across machines: a file goes to val when the
  SHA-1 of its relative path (POSIX form) falls in the lowest 5% (`VAL_FRACTION`).
- Files are joined in sorted path order, each followed by `FILE_SEPARATOR` (byte 0x1c, ASCII
  "file separator", which Python sources do not contain), so a model can learn where files end.

Also here: `ByteTokenizer` (bytes as token ids 0..255, optional BOS/EOS/PAD at 256..258),
`random_batches`, a seeded iterator of contiguous (x, y) windows, and `code_prompts`, fixed
prompts cut at line starts of the validation files (for decoding benchmarks).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import torch

VAL_FRACTION = 0.05
FILE_SEPARATOR = b"\x1c"
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
TEST_DIRS = frozenset({"test", "tests", "idle_test"})


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_val_file(relative_path: str) -> bool:
    """The split rule: SHA-1 of the POSIX relative path, lowest VAL_FRACTION -> val."""
    digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < VAL_FRACTION


def list_sources(root: str | Path | None = None, *, include_tests: bool = False) -> list[str]:
    """Relative POSIX paths of the corpus' `.py` files under root, sorted."""
    root = stdlib_dir() if root is None else Path(root)
    skip = SKIP_DIRS if include_tests else SKIP_DIRS | TEST_DIRS
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]  # prune: never enter site-packages
        rel_dir = Path(dirpath).relative_to(root)
        found += [(rel_dir / f).as_posix() for f in filenames if f.endswith(".py")]
    return sorted(found)


@functools.lru_cache(maxsize=4)
def _load(root: str, include_tests: bool) -> dict:
    files = list_sources(root, include_tests=include_tests)
    chunks: dict[str, list[bytes]] = {"train": [], "val": []}
    n_files = {"train": 0, "val": 0}
    for rel in files:
        data = (Path(root) / rel).read_bytes()
        if not data:
            continue
        split = "val" if is_val_file(rel) else "train"
        chunks[split] += [data, FILE_SEPARATOR]
        n_files[split] += 1
    if n_files["train"] + n_files["val"] == 0:
        raise FileNotFoundError(
            f"text corpus: no non-empty .py files under {root} (the Python standard library "
            "sources, sysconfig.get_paths()['stdlib']). Some distributions ship them in a "
            "separate package (e.g. Debian/Ubuntu: libpython3.X-stdlib); install it, or pass "
            "root= a directory of .py files."
        )
    tensors = {}
    for split, parts in chunks.items():
        buffer = bytearray(b"".join(parts))
        empty = torch.empty(0, dtype=torch.uint8)
        tensors[split] = torch.frombuffer(buffer, dtype=torch.uint8) if buffer else empty
    return {"root": root, "files": n_files, "data": tensors}


def load_corpus(
    max_bytes: int | None = None,
    split: str = "train",
    *,
    root: str | Path | None = None,
    include_tests: bool = False,
) -> torch.Tensor:
    """The corpus split as a uint8 tensor (at most `max_bytes`, from its start).

    Read once per process and shared: do not modify the returned tensor in place."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    corpus = _load(str(stdlib_dir() if root is None else Path(root)), include_tests)
    data = corpus["data"][split]
    if len(data) == 0:
        raise ValueError(
            f"text corpus under {corpus['root']}: the {split!r} split is empty "
            f"({corpus['files']['train']} train / {corpus['files']['val']} val files); "
            "use a directory with more .py files"
        )
    return data if max_bytes is None else data[:max_bytes]


def corpus_stats(root: str | Path | None = None, *, include_tests: bool = False) -> dict:
    corpus = _load(str(stdlib_dir() if root is None else Path(root)), include_tests)
    train, val = corpus["data"]["train"], corpus["data"]["val"]
    return dict(
        root=corpus["root"],
        files=corpus["files"]["train"] + corpus["files"]["val"],
        train_files=corpus["files"]["train"],
        val_files=corpus["files"]["val"],
        bytes=len(train) + len(val),
        train_bytes=len(train),
        val_bytes=len(val),
    )


class ByteTokenizer:
    """Bytes are tokens 0..255. With `special_tokens=True`: BOS=256, EOS=257, PAD=258."""

    def __init__(self, *, special_tokens: bool = False):
        self.special_tokens = special_tokens
        self.bos_id = 256 if special_tokens else None
        self.eos_id = 257 if special_tokens else None
        self.pad_id = 258 if special_tokens else None
        self.vocab_size = 259 if special_tokens else 256

    def encode(self, text: str | bytes, *, bos: bool = False, eos: bool = False) -> list[int]:
        if (bos or eos) and not self.special_tokens:
            raise ValueError("bos/eos need ByteTokenizer(special_tokens=True)")
        ids = list(text.encode("utf-8") if isinstance(text, str) else text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids) -> str:
        """Token ids (list or tensor) -> text; special tokens are dropped, invalid UTF-8 is
        replaced (a byte model can emit any byte sequence)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


def random_batches(
    data: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator | int | None = None,
    *,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y) int64 batches of shape (batch_size, seq_len): random contiguous windows of
    `data`, y = x shifted by one. `generator` (or an int seed; None = seed 0) fixes the stream."""
    if data.dim() != 1 or len(data) < seq_len + 1:
        raise ValueError(
            f"random_batches: need a 1-D tensor of at least seq_len + 1 = {seq_len + 1} tokens, "
            f"got shape {tuple(data.shape)}"
        )
    if generator is None or isinstance(generator, int):
        generator = torch.Generator().manual_seed(0 if generator is None else generator)
    windows = data.unfold(0, seq_len + 1, 1)  # (N - seq_len, seq_len + 1), a view
    while True:
        starts = torch.randint(len(windows), (batch_size,), generator=generator)
        batch = windows[starts].long().to(device)
        yield batch[:, :-1], batch[:, 1:]


def code_prompts(n: int, length: int, *, split: str = "val") -> list[list[int]]:
    """`n` prompts of `length` bytes, evenly spread over the `split` corpus, each starting at a
    line start: the same prompts on every machine with the same Python version."""
    if n < 1 or length < 1:
        raise ValueError(f"code_prompts: n and length must be >= 1, got n={n}, length={length}")
    data = load_corpus(split=split)
    if length > len(data):
        raise ValueError(f"code_prompts: length={length} exceeds the {split} split ({len(data)} B)")
    out = []
    for i in range(n):
        start = (i * len(data)) // n
        newline = (data[start : start + 4096] == ord("\n")).nonzero()
        start += int(newline[0]) + 1 if len(newline) else 0
        start = min(start, len(data) - length)
        out.append(data[start : start + length].tolist())
    return out

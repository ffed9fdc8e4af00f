import pytest
import torch

from paperlab.core.data.text import (
    FILE_SEPARATOR,
    ByteTokenizer,
    corpus_stats,
    is_val_file,
    list_sources,
    load_corpus,
    random_batches,
)


def test_split_is_by_file_deterministic_and_disjoint():
    files = list_sources()
    assert files == list_sources() and len(files) > 100
    assert not any(part in ("site-packages", "test") for f in files for part in f.split("/")[:-1])
    val = {f for f in files if is_val_file(f)}
    assert 0 < len(val) < 0.15 * len(files)

    stats = corpus_stats()
    assert stats["files"] == stats["train_files"] + stats["val_files"] <= len(files)
    assert stats["bytes"] == stats["train_bytes"] + stats["val_bytes"]
    train, valid = load_corpus(), load_corpus(split="val")
    assert (len(train), len(valid)) == (stats["train_bytes"], stats["val_bytes"])
    assert torch.equal(load_corpus(max_bytes=1000), train[:1000])
    # each file ends with the separator, so files are exactly the separator-delimited pieces
    sep = FILE_SEPARATOR[0]
    assert int((train == sep).sum()) == stats["train_files"]
    assert int((valid == sep).sum()) == stats["val_files"]


def test_split_disjoint_on_small_root(tmp_path):
    names = [f"m{i}.py" for i in range(60)]
    for n in names:
        (tmp_path / n).write_text(f"# {n}\nx = 1\n")
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "junk.py").write_text("junk = 1\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_x.py").write_text("t = 1\n")
    assert list_sources(tmp_path) == sorted(names)
    assert "test/test_x.py" in list_sources(tmp_path, include_tests=True)
    train = ByteTokenizer().decode(load_corpus(root=tmp_path))
    val = ByteTokenizer().decode(load_corpus(split="val", root=tmp_path))
    in_val = {n for n in names if f"# {n}\n" in val}
    in_train = {n for n in names if f"# {n}\n" in train}
    assert in_val == {n for n in names if is_val_file(n)} and in_val
    assert in_train | in_val == set(names) and not in_train & in_val


def test_empty_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no non-empty \.py files under .*root="):
        load_corpus(root=tmp_path)
    (tmp_path / "notes.txt").write_text("not python")
    with pytest.raises(FileNotFoundError, match="stdlib"):
        corpus_stats(root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_corpus(split="test")


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "def f(x):\n    return 'héllo ✓'\n"
    ids = tok.encode(text)
    assert tok.vocab_size == 256 and max(ids) < 256 and len(ids) == len(text.encode())
    assert tok.decode(ids) == text and tok.decode(torch.tensor(ids)) == text
    special = ByteTokenizer(special_tokens=True)
    ids = special.encode(text, bos=True, eos=True)
    assert special.vocab_size == 259 and ids[0] == special.bos_id and ids[-1] == special.eos_id
    assert special.decode(ids + [special.pad_id]) == text
    with pytest.raises(ValueError, match="special_tokens"):
        tok.encode("x", bos=True)


def test_random_batches_shapes_and_seed():
    data = load_corpus(max_bytes=50_000)
    x, y = next(random_batches(data, 4, 32, torch.Generator().manual_seed(0)))
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])

    def first_three(seed):
        stream = random_batches(data, 4, 32, seed)
        return [next(stream) for _ in range(3)]

    a, b, c = first_three(7), first_three(7), first_three(8)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0][0], c[0][0])
    with pytest.raises(ValueError, match="seq_len"):
        next(random_batches(data[:10], 2, 32))

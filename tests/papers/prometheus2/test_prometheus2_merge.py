"""Weight merging against `peft.utils.merge_utils` (the field's reference), and on disk."""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from paperlab.papers.prometheus2.merge import (
    METHODS,
    load_checkpoint,
    merge_checkpoints,
    merge_state_dicts,
)

pm = pytest.importorskip("peft.utils.merge_utils")


def _models(n=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    base = {
        "model.layers.0.mlp.up_proj.weight": torch.randn(8, 6, generator=g),
        "model.norm.weight": torch.randn(6, generator=g),
        "lm_head.weight": torch.randn(5, 6, generator=g),
    }
    models = [{k: v + torch.randn(v.shape, generator=g) for k, v in base.items()} for _ in range(n)]
    cast = lambda sd: {k: v.to(dtype) for k, v in sd.items()}  # noqa: E731
    return cast(base), [cast(m) for m in models]


def _peft_rescales() -> bool:
    """peft 0.18's random_pruning computes the 1/density rescale and discards it; a later
    peft may fix that. Detect which, so the comparison stays exact either way."""
    torch.manual_seed(0)
    pruned = pm.random_pruning(torch.ones(64), 0.5, rescale=True)
    return bool((pruned > 1.5).any())


def _peft(method, taus, weights, density):
    w = torch.tensor(weights, dtype=torch.float32)
    if method == "task_arithmetic":
        return pm.task_arithmetic(taus, w)
    with warnings.catch_warnings():  # peft warns that density 1 prunes nothing
        warnings.simplefilter("ignore")
        return getattr(pm, method)(taus, w, density)


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare_linear", "dare_ties"])
@pytest.mark.parametrize("density", [1.0, 0.5, 0.2])
def test_task_vector_methods_match_peft(method, density):
    base, models = _models()
    weights = [0.5, 0.3, 0.7]
    ours = merge_state_dicts(base, models, method=method, weights=weights, density=density, seed=11)
    rescale = method.startswith("dare") and density < 1 and not _peft_rescales()
    torch.manual_seed(11)  # peft draws DARE's masks from the global RNG, in the same order
    for key in sorted(base):
        taus = [m[key] - base[key] for m in models]
        ref = _peft(method, taus, weights, density)
        if rescale:
            ref = ref / density
        torch.testing.assert_close(ours[key], base[key] + ref, rtol=1e-5, atol=1e-6)


def test_ties_pieces_match_peft():
    _, models = _models()
    taus = torch.stack([m["lm_head.weight"] for m in models])
    from paperlab.papers.prometheus2.merge import disjoint_mean, elect_sign, magnitude_trim

    for t in taus:
        torch.testing.assert_close(magnitude_trim(t, 0.3), pm.magnitude_based_pruning(t, 0.3))
    agree = elect_sign(taus)
    assert torch.equal(agree, pm.calculate_majority_sign_mask(taus, method="total"))
    torch.testing.assert_close(disjoint_mean(taus, agree), pm.disjoint_merge(taus, agree))
    # magnitude_prune = trim, then task arithmetic (peft's own helper)
    base, models = _models()
    key = "lm_head.weight"
    trimmed = [
        magnitude_trim(m[key] - base[key], 0.4) for m in models
    ]  # our trim fed to plain task arithmetic equals peft's magnitude_prune
    ref = pm.magnitude_prune([m[key] - base[key] for m in models], torch.ones(3), 0.4)
    torch.testing.assert_close(sum(trimmed), ref)


def test_linear_is_the_normalised_weighted_average():
    base, models = _models(n=2)
    merged = merge_state_dicts(base, models, method="linear", weights=[1.0, 3.0])
    for k in base:
        torch.testing.assert_close(merged[k], 0.25 * models[0][k] + 0.75 * models[1][k])
    # 0.5 / 0.5 (Prometheus 2 7B) equals task arithmetic with weights 0.5 / 0.5
    lin = merge_state_dicts(base, models, method="linear", weights=[0.5, 0.5])
    ta = merge_state_dicts(base, models, method="task_arithmetic", weights=[0.5, 0.5])
    for k in base:
        torch.testing.assert_close(lin[k], ta[k])


def test_default_weights_average_the_task_vectors():
    base, models = _models(n=2)
    lin = merge_state_dicts(base, models, method="linear")
    for method in ("task_arithmetic", "dare_linear"):
        out = merge_state_dicts(base, models, method=method)
        for k in base:
            torch.testing.assert_close(out[k], lin[k])


def test_dare_drop_rate_and_rescale_statistics():
    base = {"w": torch.zeros(200_000)}
    models = [{"w": torch.ones(200_000)}]
    out = merge_state_dicts(base, models, method="dare_linear", weights=[1.0], density=0.3)["w"]
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.3) < 0.01  # survivors ~ density
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.3))  # rescaled
    assert abs(out.mean().item() - 1.0) < 0.03  # the expectation is kept


def test_dare_is_seeded():
    base, models = _models()
    a = merge_state_dicts(base, models, method="dare_ties", density=0.5, seed=1)
    b = merge_state_dicts(base, models, method="dare_ties", density=0.5, seed=1)
    c = merge_state_dicts(base, models, method="dare_ties", density=0.5, seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_dtype_is_kept_and_int_buffers_copied():
    base, models = _models(dtype=torch.bfloat16)
    base["pos"] = torch.arange(4)
    for m in models:
        m["pos"] = torch.arange(4)
    merged = merge_state_dicts(base, models, method="ties", density=0.5)
    assert merged["lm_head.weight"].dtype == torch.bfloat16
    assert torch.equal(merged["pos"], torch.arange(4))


@pytest.mark.parametrize(
    ("mutate", "kwargs", "match"),
    [
        (None, {"method": "slerp"}, "method"),
        (None, {"method": "ties", "density": 0.0}, "density"),
        (None, {"method": "ties", "density": 1.5}, "density"),
        (None, {"method": "linear", "weights": [1.0, 2.0]}, "weights"),
        (None, {"method": "linear", "weights": [1.0, -1.0, 0.0]}, "weights"),
        ("drop_key", {"method": "linear"}, r"models\[1\]"),
        ("reshape", {"method": "ties"}, r"models\[2\]"),
    ],
)
def test_bad_input_is_one_value_error_naming_the_argument(mutate, kwargs, match):
    base, models = _models()
    if mutate == "drop_key":
        del models[1]["model.norm.weight"]
    elif mutate == "reshape":
        models[2]["lm_head.weight"] = torch.zeros(6, 5)
    with pytest.raises(ValueError, match=match):
        merge_state_dicts(base, models, **kwargs)


def test_no_models_is_an_error():
    base, _ = _models()
    with pytest.raises(ValueError, match="models"):
        merge_state_dicts(base, [], method="linear")


def test_merge_checkpoints_files_and_hf_folders(private_tempdir):
    base, models = _models(n=2)
    save_file(base, str(private_tempdir / "base.safetensors"), metadata={"format": "pt", "x": "1"})
    (private_tempdir / "a").mkdir()
    save_file(models[0], str(private_tempdir / "a" / "model.safetensors"))
    # b: a sharded Hugging Face folder
    shard = private_tempdir / "b"
    shard.mkdir()
    keys = sorted(models[1])
    save_file({k: models[1][k] for k in keys[:1]}, str(shard / "model-00001-of-00002.safetensors"))
    save_file({k: models[1][k] for k in keys[1:]}, str(shard / "model-00002-of-00002.safetensors"))
    index = {k: f"model-0000{1 if i == 0 else 2}-of-00002.safetensors" for i, k in enumerate(keys)}
    import json

    (shard / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
    out = merge_checkpoints(
        private_tempdir / "base.safetensors",
        [private_tempdir / "a", shard],
        private_tempdir / "merged",
        method="dare_ties",
        density=0.5,
        seed=3,
    )
    assert out == private_tempdir / "merged" / "model.safetensors"
    expected = merge_state_dicts(base, models, method="dare_ties", density=0.5, seed=3)
    got = load_file(str(out))
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    _, meta = load_checkpoint(out)
    assert meta["x"] == "1" and json.loads(meta["paperlab_merge"])["method"] == "dare_ties"


def test_merge_checkpoints_writes_nothing_on_error(private_tempdir):
    base, models = _models(n=2)
    models[1]["lm_head.weight"] = torch.zeros(2, 2)
    for name, sd in (("base", base), ("a", models[0]), ("b", models[1])):
        save_file(sd, str(private_tempdir / f"{name}.safetensors"))
    with pytest.raises(ValueError, match="shape"):
        merge_checkpoints(
            private_tempdir / "base.safetensors",
            [private_tempdir / "a.safetensors", private_tempdir / "b.safetensors"],
            private_tempdir / "out.safetensors",
            method="linear",
        )
    assert sorted(p.name for p in private_tempdir.iterdir()) == [
        "a.safetensors",
        "b.safetensors",
        "base.safetensors",
    ]


def test_methods_listed():
    assert METHODS == ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties")

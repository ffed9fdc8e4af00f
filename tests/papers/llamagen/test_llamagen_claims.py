"""LlamaGen's claims at tiny scale end to end (verdicts from measurements, plots written), and
clear errors for bad config values."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperlab.claims import UserError
from paperlab.runner import plan_run, run_plans


def test_tiny_claims_produce_verdicts_and_plots(tmp_path: Path):
    plans = plan_run(["llamagen"], scale="tiny")
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert not errors and not interrupted
    by_id = {r.claim_id: r for r in results}
    assert list(by_id) == ["tokenizer", "cfg", "kv_cache"]
    for r in results:
        assert r.verdict in ("holds", "fails", "inconclusive")
        assert r.ours and r.artifacts
        for name in r.artifacts:
            assert next(tmp_path.glob(f"llamagen/{r.claim_id}/*/{name}")).stat().st_size > 0
    m = by_id["tokenizer"].measured
    assert 0 < m["usage_l2"] <= 1 and 0 < m["usage_plain"] <= 1 and m["mse_l2"] > 0
    m = by_id["cfg"].measured
    assert {"acc_cfg1", "acc_cfg4", "fd_cfg1", "fd_cfg4", "fd_argmin_scale"} <= set(m)
    m = by_id["kv_cache"].measured
    assert m["tokens_identical"] == 1.0 and m["speedup"] > 0  # cache == recompute, exactly


@pytest.mark.parametrize(
    "pair, message",
    [
        ("cfg_scales=2,4", "start with 1"),
        ("downsample=3", "downsample"),
        ("dataset=cifar", "dataset"),
        ("gen_heads=3", "multiple of 4"),
        ("n_test=480", "n_test"),
    ],
)
def test_bad_config_is_one_clear_error(pair: str, message: str):
    with pytest.raises(UserError, match=message):
        plan_run(["llamagen"], scale="tiny", overrides=[pair])


@pytest.mark.slow
def test_default_claims(tmp_path: Path):
    """Default scale (~2 min on 2 cores): the tokenizer and KV-cache claims hold; CFG improves
    class accuracy and FD somewhere in the sweep (the verdict on the largest scale is reported,
    not asserted)."""
    plans = plan_run(["llamagen"], scale="default")
    results, errors, _ = run_plans(
        plans, scale="default", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert not errors
    by_id = {r.claim_id: r for r in results}
    assert by_id["tokenizer"].verdict == "holds"
    assert by_id["kv_cache"].verdict == "holds"
    m = by_id["cfg"].measured
    assert m["acc_best"] > m["acc_no_cfg"] and m["fd_best"] < m["fd_no_cfg"]

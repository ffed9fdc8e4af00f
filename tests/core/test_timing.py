"""time_interleaved: every method on every input, the order rotating between repetitions, the
last repetition's outputs kept. No assertions on the measured times themselves."""

from __future__ import annotations

import pytest

from paperlab.core.timing import Timings, time_interleaved


def recording_methods(names, log):
    def make(name):
        def fn(x):
            log.append((name, x))
            return f"{name}({x})"

        return fn

    return {name: make(name) for name in names}


def test_outputs_per_method_and_input():
    log = []
    methods = recording_methods(["a", "b"], log)
    timings = time_interleaved(methods, [1, 2, 3], reps=2, warmup=False)
    assert timings.outputs == {"a": ["a(1)", "a(2)", "a(3)"], "b": ["b(1)", "b(2)", "b(3)"]}
    assert set(timings.seconds) == {"a", "b"}
    assert all(len(s) == 2 and all(t >= 0 for t in s) for s in timings.seconds.values())
    assert len(log) == 2 * 3 * 2


def test_outputs_are_from_the_last_repetition():
    calls = {"n": 0}

    def counter(x):
        calls["n"] += 1
        return (x, calls["n"])

    timings = time_interleaved({"c": counter}, ["x", "y"], reps=3, warmup=False)
    assert timings.outputs["c"] == [("x", 5), ("y", 6)]


def test_order_rotates_between_repetitions():
    log = []
    methods = recording_methods(["a", "b", "c"], log)
    time_interleaved(methods, [0, 1], reps=4, warmup=False)
    rounds = [[name for name, _ in log[i : i + 3]] for i in range(0, len(log), 3)]
    # each input runs every method back to back; the order shifts by one per repetition
    expected_orders = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert rounds == [order for order in expected_orders for _ in range(2)]
    assert [x for _, x in log] == [x for _ in range(4) for x in (0, 1) for _ in range(3)]


def test_warmup_runs_each_method_once_on_the_first_input():
    log = []
    methods = recording_methods(["a", "b"], log)
    time_interleaved(methods, [7, 8], reps=1, warmup=True)
    assert log[:2] == [("a", 7), ("b", 7)]
    assert len(log) == 2 + 2 * 2
    log.clear()
    time_interleaved(methods, [7, 8], reps=1, warmup=False)
    assert len(log) == 2 * 2


@pytest.mark.parametrize(
    "methods, inputs, reps",
    [({"a": abs}, [], 1), ({"a": abs}, [1], 0), ({"a": abs}, [1], -1), ({}, [1], 1)],
)
def test_rejects_empty_inputs_methods_and_bad_reps(methods, inputs, reps):
    with pytest.raises(ValueError, match="reps >= 1"):
        time_interleaved(methods, inputs, reps)


def test_median_and_ratio():
    timings = Timings(seconds={"slow": [3.0, 1.0, 2.0], "fast": [0.5, 1.5, 1.0]}, outputs={})
    assert timings.median("slow") == 2.0
    assert timings.median("fast") == 1.0
    assert timings.ratio("slow", "fast") == 2.0

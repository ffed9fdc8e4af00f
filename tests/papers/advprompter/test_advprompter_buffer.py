"""The prioritised replay buffer."""

import pytest
import torch

from paperlab.papers.advprompter import ReplayBuffer


def test_zero_priority_is_dropped_and_oldest_overwritten():
    buf = ReplayBuffer(capacity=2, alpha=1.5)
    buf.add(("a", "t", "s0"), 0.0)
    assert len(buf) == 0
    for i in range(3):
        buf.add(("a", "t", f"s{i}"), float(i + 1))
    assert len(buf) == 2
    assert [x[2] for x in buf.items] == ["s2", "s1"]  # s0 (oldest) overwritten


def test_sampling_follows_priority_to_the_alpha():
    buf = ReplayBuffer(capacity=4, alpha=1.5)
    buf.add(("a", "t", "low"), 1.0)
    buf.add(("a", "t", "high"), 4.0)
    probs = buf.probabilities()
    torch.testing.assert_close(probs, torch.tensor([1.0, 8.0], dtype=torch.float64) / 9.0)
    gen = torch.Generator().manual_seed(0)
    draws = buf.sample(3000, gen)
    share = sum(d[2] == "high" for d in draws) / len(draws)
    assert abs(share - 8 / 9) < 0.03  # 5 s.e. of a 3000-draw share


def test_state_round_trip():
    buf = ReplayBuffer(capacity=3)
    buf.add(("a", "t", "s"), 2.0)
    other = ReplayBuffer(capacity=3)
    other.load_state(buf.state())
    assert other.items == buf.items and other.priorities == buf.priorities


def test_bad_arguments():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(capacity=0)

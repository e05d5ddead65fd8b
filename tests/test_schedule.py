import math

import pytest

from fourd.schedule import warmup_cosine


def test_warmup_then_cosine():
    values = [warmup_cosine(s, 10, 110, 0.01) for s in range(110)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(values[10:-1], values[11:], strict=True))
    assert warmup_cosine(500, 10, 110, 0.01) == pytest.approx(0.01)


def test_the_per_step_scheduler_warms_up_over_at_most_half_of_a_short_run():
    import torch

    from fourd.schedule import warmup_cosine_per_step

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=2.0)
    entry = warmup_cosine_per_step(optimizer, warmup_steps=50, total_steps=10, min_ratio=0.1)
    assert entry["interval"] == "step"
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        entry["scheduler"].step()
    assert rates[:5] == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0])  # 5 warmup steps, not 50
    assert rates[5] == pytest.approx(2.0) and rates[-1] > 0.2  # then cosine towards 0.1 x 2.0

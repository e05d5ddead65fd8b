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

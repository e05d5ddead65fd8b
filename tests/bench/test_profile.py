"""Profiles split a step's time by kind of op, and bound the speedup over a peer by its GEMM and attention time."""

import pytest
import torch
import torch.nn.functional as F

from fourd.bench.profile import KINDS, op_kind, speedup_bound, step_profile


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("aten::mm", "gemm"),
        ("aten::addmm", "gemm"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu_backward", "attention"),
        ("aten::_efficient_attention_forward", "attention"),
        ("aten::mkldnn_convolution", "conv"),
        ("aten::gelu", "other"),
        ("aten::matmul", "other"),  # dispatches to mm, which holds the self time
    ],
)
def test_ops_are_sorted_by_kind(name, kind):
    assert op_kind(name) == kind


def test_each_step_is_charged_to_the_kind_of_op_it_runs():
    a, q = torch.randn(384, 384), torch.randn(1, 4, 1024, 32)
    fns = {
        "matmuls": lambda: [a @ a for _ in range(20)],
        "attention": lambda: [F.scaled_dot_product_attention(q, q, q) for _ in range(5)],
        "elementwise": lambda: [a.exp() for _ in range(20)],
    }
    for fn in fns.values():  # warm, as the bench's steps are: a first call's one-off costs are not the op's
        fn()
    profiles = step_profile(fns, 2, torch.device("cpu"))
    for name, kind in (("matmuls", "gemm"), ("attention", "attention"), ("elementwise", "other")):
        assert set(profiles[name]) == set(KINDS)
        assert profiles[name][kind] > 0.8 * sum(profiles[name].values()), (name, profiles[name])


def test_the_bound_is_the_step_over_its_gemm_and_attention_time():
    assert speedup_bound({"gemm": 0.5, "attention": 0.3, "conv": 0.1, "other": 0.1}) == pytest.approx(1.25)

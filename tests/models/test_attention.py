import pytest
import torch

from fourd.models.attention import (
    dot_product_attention,
    reference_attention,
    resolve_backend,
    xformers_available,
)


def qkv(device="cpu", dtype=torch.float32, n=37):
    g = torch.Generator(device="cpu").manual_seed(1)
    return [torch.randn(2, n, 3, 16, generator=g).to(device, dtype) for _ in range(3)]


def test_sdpa_matches_reference():
    q, k, v = qkv()
    torch.testing.assert_close(
        dot_product_attention(q, k, v, "sdpa"), reference_attention(q, k, v), atol=1e-5, rtol=1e-5
    )


def test_reference_is_softmax_attention_with_scaled_queries():
    q, k, v = qkv(n=5)
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / 4.0  # sqrt(head_dim=16)
    expected = torch.einsum("bhqk,bkhd->bqhd", logits.softmax(-1), v)
    torch.testing.assert_close(reference_attention(q, k, v), expected)


def test_auto_is_sdpa_on_cpu_and_unknown_backend_rejected():
    assert resolve_backend("auto", torch.device("cpu")) == "sdpa"
    assert resolve_backend("auto", torch.device("cpu"), torch.bfloat16) == "reference"  # faster there
    with pytest.raises(ValueError, match="unknown attention backend"):
        resolve_backend("flash9", torch.device("cpu"))
    with pytest.raises(RuntimeError, match="xformers"):
        resolve_backend("xformers", torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ["sdpa", "xformers"])
def test_cuda_backends_match_reference(backend):
    if backend == "xformers" and not xformers_available():
        pytest.skip("xformers kernels not available")
    q, k, v = qkv("cuda", torch.bfloat16, n=300)
    expected = reference_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(dot_product_attention(q, k, v, backend).float(), expected, atol=2e-2, rtol=2e-2)

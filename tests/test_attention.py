"""`pfn.attention.attention`: the explicit CPU path is the same exact attention as torch's fused kernel."""

import pytest
import torch
import torch.nn.functional as F

import pfn.attention
from pfn.attention import attention


def _inputs(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(3, 2, n, 8, generator=gen, dtype=dtype, requires_grad=True) for n in (5, 7, 7))
    mask = torch.rand(3, 1, 1, 7, generator=gen) < 0.7
    mask[:, ..., 0] = True  # every dataset keeps a context row
    return q, k, v, mask


@pytest.mark.parametrize("masked", [False, True])
def test_explicit_path_matches_the_fused_kernel_with_its_gradients(masked):
    q, k, v, mask = _inputs()
    mask = mask if masked else None
    ours = attention(q, k, v, mask)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, fused, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    fused_grads = torch.autograd.grad(fused.square().sum(), (q, k, v))
    for g, h in zip(grads, fused_grads, strict=True):
        torch.testing.assert_close(g, h, rtol=1e-5, atol=1e-5)


def test_masked_keys_get_no_weight_whatever_they_hold():
    q, k, v, mask = _inputs()
    out = attention(q, k, v, mask)
    k2, v2 = k.detach().clone(), v.detach().clone()
    hidden = ~mask[:, 0, 0]  # 3 x 7
    k2[hidden.unsqueeze(1).expand(3, 2, 7)] = 1e6
    v2[hidden.unsqueeze(1).expand(3, 2, 7)] = -1e6
    torch.testing.assert_close(attention(q, k2, v2, mask), out)


def test_float64_stays_float64_and_bf16_autocast_stays_close():
    q, k, v, mask = _inputs(torch.float64)
    out = attention(q, k, v, mask)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    q, k, v, mask = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = attention(q, k, v, mask)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), attention(q, k, v, mask), rtol=0.05, atol=0.03)


@pytest.fixture
def fused_calls(monkeypatch):
    """The query shapes of every call to torch's fused kernel made through `pfn.attention`."""
    calls, original = [], F.scaled_dot_product_attention

    def fused(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(pfn.attention.F, "scaled_dot_product_attention", fused)
    return calls


def test_large_problems_use_the_fused_kernel(monkeypatch, fused_calls):
    q, k, v, mask = _inputs()
    calls = fused_calls
    attention(q, k, v, mask)
    assert not calls
    monkeypatch.setattr(pfn.attention, "MAX_SCORE_ELEMENTS", 3 * 2 * 5 * 7 - 1)
    attention(q, k, v, mask)
    assert calls == [q.shape]


def test_without_gradients_or_autocast_the_fused_kernel_serves(fused_calls):
    q, k, v, mask = _inputs()
    calls = fused_calls
    with torch.no_grad():
        predicted = attention(q, k, v, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            attention(q, k, v, mask)  # small and under autocast: explicit
    assert calls == [q.shape]
    attention(q.detach(), k.detach(), v.detach(), mask)  # nothing requires a gradient: fused
    assert calls == [q.shape, q.shape]
    torch.testing.assert_close(predicted, attention(q, k, v, mask).detach(), rtol=1e-5, atol=1e-6)

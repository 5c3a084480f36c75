"""The integer hyper-synthesis used when coding (compress.models.integer_synthesis)."""
from __future__ import annotations

import copy
import hashlib

import pytest
import torch
import torch.nn.functional as F

from compress.models.integer_synthesis import LEVELS, PEAK, SPLIT, IntConv, IntegerSynthesis, quantize_activation
from shared import registry
from shared.trainer import seed_everything

#: the hash of test_integer_h_s_output_is_pinned's output (format version 3's arithmetic)
PINNED = "cd5998bc187a350d"


def channels_first(conv, a):
    """An :class:`IntConv` (channels-last) on a (B, C, H, W) input, its output (B, O, H', W')."""
    return conv(a.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def ints(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-127, 128, shape, generator=g).to(torch.int8)


@pytest.mark.parametrize("b,h,w", [(1, 1, 1), (1, 3, 5), (2, 3, 5), (2, 24, 16)])
def test_integer_convolutions_equal_the_float64_ones_exactly(b, h, w):
    a = ints(b, 12, h, w)
    for k, stride, pad, out_pad in [(5, 2, 2, 1), (4, 2, 1, 0), (3, 1, 1, 0), (2, 2, 0, 0), (6, 2, 2, 0), (7, 3, 2, 0)]:
        wk = ints(12, 10, k, k, seed=k)
        layer = torch.nn.ConvTranspose2d(12, 10, k, stride, pad, out_pad)
        ref = F.conv_transpose2d(a.double(), wk.double(), stride=stride, padding=pad, output_padding=out_pad)
        out = channels_first(IntConv(layer, wk), a)
        assert out.dtype == torch.int32 and torch.equal(out.double(), ref), (k, stride, pad, out_pad)
    wc = ints(7, 12, 3, 3, seed=2)
    for stride, pad in [(1, 1), (2, 1), (1, 0)]:
        if h + 2 * pad >= 3 and w + 2 * pad >= 3:
            ref = F.conv2d(a.double(), wc.double(), stride=stride, padding=pad)
            assert torch.equal(channels_first(IntConv(torch.nn.Conv2d(12, 7, 3, stride, pad), wc), a).double(), ref)


def test_activations_split_into_two_small_int8_parts_exactly():
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64) * 7
    (hi, lo), scale = quantize_activation(x)
    assert hi.dtype == lo.dtype == torch.int8
    assert max(hi.abs().max(), lo.abs().max()) <= LEVELS  # no kernel can saturate (module doc)
    q = SPLIT * hi.double() + lo.double()
    assert (q * scale - x).abs().max() <= scale / 2 + 1e-12 and q.abs().max() == PEAK
    assert quantize_activation(torch.zeros(1, 2, 3, 3, dtype=torch.float64))[0].abs().max() == 0


def test_every_13_bit_value_splits_exactly():
    """Every fixed-point value the activations can take: SPLIT·hi + lo gives it back, both parts in
    range, hi its nearest multiple of SPLIT (the float32 split equals the exact one)."""
    q = torch.arange(-PEAK, PEAK + 1, dtype=torch.float64).view(1, 1, 1, -1)
    (hi, lo), scale = quantize_activation(q)
    assert scale == 1.0
    assert torch.equal(SPLIT * hi.long() + lo.long(), q.long())
    assert max(hi.abs().max(), lo.abs().max()) <= LEVELS
    assert torch.equal(hi.long(), torch.round(q / SPLIT).long())


@pytest.mark.parametrize("name", ["mean_scale", "hyperprior"])
def test_integer_h_s_is_close_to_float64_and_thread_count_invariant(name):
    seed_everything(0)
    model = registry.build(name, {"N": 32, "M": 48}).eval()
    z_hat = torch.randn(1, 32, 3, 5).mul(4).round() + 0.3
    ref = copy.deepcopy(model.h_s).double()(z_hat.double())
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        out = IntegerSynthesis(model.h_s)(z_hat)
        torch.set_num_threads(1)
        again = IntegerSynthesis(model.h_s)(z_hat)
    finally:
        torch.set_num_threads(threads)
    assert out.dtype == torch.float64 and out.shape == ref.shape
    assert (out - ref).abs().max() <= 3e-2 * ref.abs().max()  # untrained weights: outputs near 0
    assert torch.equal(out, again)


def test_integer_h_s_output_is_pinned():
    """Weights and input from exact rational patterns (no RNG, no transcendental functions): the
    output's hash is fixed by the integer arithmetic alone, so any machine or library version that
    computes it differently fails here, not in a user's decoder."""
    model = registry.build("mean_scale", {"N": 16, "M": 24}).eval()
    with torch.no_grad():
        for i, p in enumerate(model.h_s.parameters()):
            n = torch.arange(p.numel(), dtype=torch.float64)
            p.copy_(((n * (7 + i) % 29 - 14) / 256).view_as(p))
    n = torch.arange(16 * 3 * 4, dtype=torch.float64)
    z_hat = ((n * 5 % 23 - 11) / 2).view(1, 16, 3, 4).float()
    out = IntegerSynthesis(model.h_s)(z_hat)
    digest = hashlib.sha256(out.numpy().tobytes()).hexdigest()[:16]
    assert digest == PINNED, digest


def test_coding_parameters_follow_weight_changes():
    seed_everything(0)
    model = registry.build("mean_scale", {"N": 32, "M": 48}).eval()
    z_hat = torch.randn(1, 32, 2, 2).mul(4).round()
    before = model.coding_parameters(z_hat)[1].clone()
    with torch.no_grad():
        model.h_s[-1].bias.add_(1.0)
    assert torch.allclose(model.coding_parameters(z_hat)[1], before + 1.0, atol=1e-3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["h_s.4.bias"] -= 1.0
    model.load_state_dict(state)
    assert torch.allclose(model.coding_parameters(z_hat)[1], before, atol=1e-3)
    optimizer = torch.optim.SGD(model.h_s.parameters(), lr=1.0)
    model.h_s[-1].bias.sum().mul(-0.5).backward()  # one step adds 0.5 to every bias element
    optimizer.step()
    assert torch.allclose(model.coding_parameters(z_hat)[1], before + 0.5, atol=1e-3)


def test_unsupported_layers_are_refused():
    with pytest.raises(ValueError, match="supports"):
        IntegerSynthesis(torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3), torch.nn.ReLU()))


def test_precise_last_layer_is_closer_to_float64():
    """``precise_last`` (the context networks' setting): the last layer's weights at 13 bits as two
    int8 halves; its output lies closer to the float64 network's than with 7-bit weights."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 6, 3, padding=1)).double()  # (the last layer alone: its error is the weights')
    x = torch.randn(1, 8, 12, 10, dtype=torch.float64)
    with torch.no_grad():
        exact = net(x)
        coarse = (IntegerSynthesis(net)(x) - exact).abs().max()
        fine = (IntegerSynthesis(net, precise_last=True)(x) - exact).abs().max()
    assert fine < 0.1 * coarse

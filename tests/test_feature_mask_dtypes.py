"""Masks are read in their own dtype when it is the input's or the accumulation type's, and
converted to the accumulation type otherwise: the values the kernels use are those of
mask.to(accumulation type) in every case, so the loss and gradients are bitwise those of that
call. Covers the three mask kinds (full, one-channel over contiguous and channels_last layers),
a layer of several chunks, and each input dtype against each mask dtype."""
import pytest
import torch

from conftest import DEVICES

ops = torch.ops.ganloss

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# full, one-channel NCHW, one-channel NHWC (channels_last), one-channel over (N, C), multi-chunk
CASES = {
    "full": ((2, 3, 5, 7), False, False),
    "channel_nchw": ((2, 3, 5, 7), True, False),
    "channel_nhwc": ((2, 3, 5, 7), True, True),
    "channel_nc": ((4, 6), True, False),
    "multichunk_nchw": ((2, 5, 67, 131), True, False),
}


def _call(x, y, mask, reduction):
    return ops.feature_loss([x], [y], [mask], [0.75], "l1", reduction, 1e-6, True, True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "per_sample"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mask_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mask_dtype_reads_the_values_of_the_converted_mask(device, dtype, mask_dtype, case,
                                                           reduction):
    shape, one_channel, channels_last = CASES[case]
    x = torch.randn(shape, device=device).to(dtype)
    y = torch.randn(shape, device=device).to(dtype)
    mshape = (shape[0], 1) + shape[2:] if one_channel else shape
    mask = (torch.rand(mshape, device=device) + 0.25).to(mask_dtype)
    if channels_last:
        x, y = (t.contiguous(memory_format=torch.channels_last) for t in (x, y))
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    got = _call(x, y, mask, reduction)
    want = _call(x, y, mask.to(acc), reduction)
    for g, w, what in zip(got, want, ("loss", "stats", "dx", "dy")):
        if isinstance(g, list):
            g, w = g[0], w[0]
        assert torch.equal(g, w), f"{what} differs from the call with a {acc} mask"

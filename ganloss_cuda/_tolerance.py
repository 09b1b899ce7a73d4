"""The one tolerance table: how close ganloss's results must be to the float64 reference computed
on the same (dtype-rounded) inputs. Used by the tests, the main job's self-check
(`python -m ganloss_cuda`) and the benchmarks' correctness gate."""
import torch

# The loss accumulates in fp32 (fp64 for fp64 inputs) whatever the input dtype: relative error.
LOSS_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}
# Gradients are stored in the input dtype: error relative to the largest reference gradient.
GRAD_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
# float16 gradients below its smallest normal (6e-5) are subnormals spaced 2**-24 apart.
GRAD_ATOL = {torch.float64: 0.0, torch.float32: 0.0, torch.float16: 2.0**-24, torch.bfloat16: 0.0}
# float32 Gram/style products through TF32 tensor cores (CUDA, only when
# torch.get_float32_matmul_precision() is not "highest"): inputs rounded to 10 mantissa bits.
TF32_LOSS_RTOL = 3e-3
TF32_GRAD_RTOL = 1e-2


def assert_close(actual, expected, dtype, kind: str):
    """Raise AssertionError unless |actual - expected| <= rtol * max|expected| + atol everywhere
    (the tests' rule), with rtol and atol of the table for the inputs' dtype: kind "loss" uses
    LOSS_RTOL, kind "grad" GRAD_RTOL and GRAD_ATOL. Compared in float64 on expected's device."""
    expected = expected.detach().double()
    actual = actual.detach().to(expected.device, torch.float64)
    rtol, atol = (LOSS_RTOL[dtype], 0.0) if kind == "loss" else (GRAD_RTOL[dtype], GRAD_ATOL[dtype])
    bound = rtol * expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=bound + atol)

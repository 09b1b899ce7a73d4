"""style_loss benchmarks under pytest: the Gram/style suite (ganloss_cuda/benchmark/gram.py)
through the harness, one test per (device, case) that checks every provider against the float64
reference and times them interleaved (conftest.py's run_bench); the table of all rows is printed
at the end of the session. See README.md in this folder."""
from ganloss_cuda.benchmark import gram

SUITE = gram.SUITE


def test_style_loss(run_bench, device, case):
    """Fails on a wrong loss or gradient of ganloss (CorrectnessError) or any error but a failed
    torch.compile, which its row records."""
    run_bench(device, case)

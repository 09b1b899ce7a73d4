"""adversarial_loss / discriminator_loss benchmarks under pytest: the adversarial suite
(ganloss_cuda/benchmark/adversarial.py: pix2pixHD, BasicSR and StyleGAN-like D and G steps)
through the harness, one test per (device, case) that checks every provider against the float64
reference and times them interleaved (conftest.py's run_bench); on a GPU the rows also carry
the CUDA-graph replay time. The table of all rows is printed at the end of the session. See
README.md in this folder."""
from ganloss_cuda.benchmark import adversarial

SUITE = adversarial.SUITE


def test_adversarial(run_bench, device, case):
    """Fails on a wrong loss or gradient of ganloss (CorrectnessError) or any error but a failed
    torch.compile or CUDA-graph capture, which its row records."""
    run_bench(device, case)

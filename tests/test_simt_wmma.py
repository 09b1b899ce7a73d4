"""nvcuda::wmma under the SIMT emulation tier (tests/simt/simt_wmma.h): the GEMM self-tests of
tests/simt/wmma_selftest.cu against float64 matmuls of the same rounded inputs, bitwise equal
across schedules and to the documented summation order, the faulty self-tests reported, and the
self-test file compiled by nvcc for sm_80 and sm_90."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SIMT = ROOT / "tests" / "simt"
sys.path.insert(0, str(SIMT))
import build  # noqa: E402

# extension_not_loaded: nothing here imports ganloss_cuda (the module is built in a subprocess).
pytestmark = [pytest.mark.simt, pytest.mark.extension_not_loaded]
needs_simt = pytest.mark.skipif(build.unavailable() is not None,
                                reason=f"SIMT tier unavailable: {build.unavailable()}")


@pytest.fixture(scope="module")
def wmma(tmp_path_factory):
    path = tmp_path_factory.mktemp("wmma") / "results.pt"
    proc = subprocess.run([sys.executable, str(SIMT / "wmma_check.py"), str(path)],
                          env=build.asan_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    results = torch.load(path)
    results["summary"] = summary
    return results


GEMMS = ["wmma_gemm_f16", "wmma_gemm_bf16", "wmma_gemm_tf32"]


@needs_simt
@pytest.mark.parametrize("name", GEMMS)
def test_gemm_matches_float64(wmma, name):
    g = wmma["gemms"][name]
    ref = g["a"].double() @ g["b"].double().t() + g["c0"].double()
    out = g["out"][0]
    assert out.shape == ref.shape and torch.isfinite(out).all()
    err = (out.double() - ref).abs().max().item()
    assert err <= 1e-5 * ref.abs().max().item(), err


@needs_simt
@pytest.mark.parametrize("name", GEMMS)
def test_gemm_bitwise_across_schedules(wmma, name):
    outs = wmma["gemms"][name]["out"]
    assert len(outs) == len(wmma["schedules"]) == 3
    for other in outs[1:]:
        assert torch.equal(outs[0].view(torch.int32), other.view(torch.int32))


@needs_simt
@pytest.mark.parametrize("name", GEMMS)
def test_gemm_documented_order(wmma, name):
    """acc = C0; acc += A[:, k] * B[:, k] for k = 0..K-1 in fp32 (the products are exact)."""
    g = wmma["gemms"][name]
    acc = g["c0"].clone()
    for k in range(g["a"].shape[1]):
        acc = acc + g["a"][:, k:k + 1] * g["b"][:, k][None, :]
    assert torch.equal(acc.view(torch.int32), g["out"][0].view(torch.int32))


@needs_simt
def test_tf32_rounds_to_nearest_away():
    """The tf32 GEMM's inputs are raw floats: __float_to_tf32 must round like cvt.rna."""
    sys.path.insert(0, str(SIMT))
    import wmma_check

    x = torch.tensor([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 1 + 2**-12, 3.4028235e38])
    assert wmma_check.tf32_rna(x).tolist() == [1 + 2**-10, 1 + 4 * 2**-11, -(1 + 2**-10), 1.0,
                                               float("inf")]


FAULTS = {
    "wmma_partial_warp": ["mma_sync"],
    "wmma_bad_ldm": ["wmma::load_matrix_sync", "ldm 20 is not a multiple of 8"],
    "wmma_misaligned": ["wmma::load_matrix_sync", "not 256-bit (32-byte) aligned"],
    "wmma_nonuniform_pointer": ["wmma::load_matrix_sync", "same in the whole warp"],
    "wmma_partial_update": ["wmma::mma_sync", "matrix_a", "x[0] and x[8]"],
}


@needs_simt
@pytest.mark.parametrize("name", sorted(FAULTS))
def test_faults_reported(wmma, name):
    message = wmma["faults"][name]
    assert message is not None, f"{name} ran without a fault"
    assert "wmma_selftest.cu:" in message, message
    for part in FAULTS[name]:
        assert part in message, message


@needs_simt
def test_partial_warp_names_mask(wmma):
    message = wmma["faults"]["wmma_partial_warp"]
    assert "0xffffffff" in message, message


@pytest.mark.nvcc
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
def test_selftest_compiles_with_nvcc(tmp_path):
    cmd = ["nvcc", "-c", "-std=c++17", "-gencode", "arch=compute_80,code=sm_80", "-gencode",
           "arch=compute_90,code=sm_90", "-I", str(SIMT), "-I", str(SIMT.parent.parent / "csrc"),
           str(SIMT / "wmma_selftest.cu"), "-o",
           str(tmp_path / "wmma_selftest.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-8000:]

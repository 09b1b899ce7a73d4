"""feature_loss benchmarks under pytest: one test per (device, case) that checks every provider
against the eager reference and times them interleaved (ganloss_cuda.benchmark.run_case); the
table of all rows is printed at the end of the session. See README.md in this folder."""
import pytest
import torch

import ganloss_cuda.benchmark as gb


def _params(quick):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        mark = pytest.mark.cuda if device == "cuda" else pytest.mark.bench_cpu
        for case in gb.cases_for(device, quick):
            yield pytest.param(device, case, marks=mark,
                               id=f"{device}-{case.op}-{case.name}-{case.dtype_name}")


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        quick = metafunc.config.getoption("--bench-quick")
        metafunc.parametrize("device,case", list(_params(quick)))


def test_feature_loss(request, bandwidth, bench_rows, device, case):
    """Fails on a wrong loss or gradient of ganloss (CorrectnessError) or any error but a failed
    torch.compile, which its row records."""
    quick = request.config.getoption("--bench-quick")
    bench_rows.extend(gb.run_case(case, device, bandwidth(device)["gbps"], quick=quick,
                                  log=lambda line: None))

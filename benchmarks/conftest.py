"""pytest setup for benchmarks/: collects bench_*.py (one per loss family, each naming its suite
as SUITE), parametrizes their tests that take `case` over (device, case) of that suite, adds
--bench-quick, --bench-json and the bench_cpu marker, measures each device's copy bandwidth once
per session (the floors' denominator), and prints the table of all benchmark rows at the end of
the session. Rule: knows no family; a family's bench file brings its suite."""
import json

import pytest
import torch

import ganloss_cuda.benchmark as gb
from ganloss_cuda import _build

ROWS = pytest.StashKey[list]()
PROBES = pytest.StashKey[dict]()


def pytest_addoption(parser):
    parser.addoption("--bench-quick", action="store_true",
                     help="ganloss benchmarks: only the quick cases, few rounds")
    parser.addoption("--bench-json", metavar="PATH",
                     help="ganloss benchmarks: write the rows here (docs/gpu-results.md fields)")


def pytest_configure(config):
    config.addinivalue_line("markers", "bench_cpu: the small CPU benchmark set (run in CI)")
    config.stash[ROWS] = []
    config.stash[PROBES] = {}


def pytest_collect_file(file_path, parent):
    """bench_*.py are test modules here (pyproject's python_files stays test_*.py)."""
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_generate_tests(metafunc):
    """A bench test taking `case` runs once per (device, case) of its module's SUITE."""
    if "case" not in metafunc.fixturenames:
        return
    suite = metafunc.module.SUITE
    quick = metafunc.config.getoption("--bench-quick")
    params = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        mark = pytest.mark.cuda if device == "cuda" else pytest.mark.bench_cpu
        params += [pytest.param(device, case, marks=mark,
                                id=f"{device}-{case.op}-{case.name}-{case.dtype_name}")
                   for case in suite.cases_for(device, quick)]
    metafunc.parametrize("device,case", params)


@pytest.fixture(scope="session")
def bandwidth(pytestconfig):
    """bandwidth(device) -> the copy-bandwidth probe of device, measured on first use."""
    probes = pytestconfig.stash[PROBES]

    def get(device):
        if device not in probes:
            probes[device] = gb.bandwidth_probe(device)
        return probes[device]

    return get


@pytest.fixture
def run_bench(request, bandwidth):
    """run_bench(device, case): checks and times every provider and mode of a case of the test
    module's SUITE (ganloss_cuda.benchmark.run_case) and adds its rows to the session's table."""
    quick = request.config.getoption("--bench-quick")

    def run(device, case):
        request.config.stash[ROWS].extend(gb.run_case(
            request.module.SUITE, case, device, bandwidth(device)["gbps"], quick=quick,
            log=lambda line: None))

    return run


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    probes = list(config.stash[PROBES].values())
    speedups = gb.speedups(rows)
    terminalreporter.write_sep("=", "ganloss_cuda benchmarks")
    for probe in probes:
        terminalreporter.write_line(f"{probe['device']} copy bandwidth: {probe['gbps']:.1f} GB/s")
    terminalreporter.write_line(gb.format_table(rows, speedups))
    path = config.getoption("--bench-json")
    if path:
        csrc = _build.find_csrc()
        report = {"csrc_sha256": _build.csrc_hash(csrc) if csrc else None,
                  "bandwidth_probe": probes, "benchmarks": rows, "speedups": speedups}
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
        terminalreporter.write_line(f"wrote {path}")

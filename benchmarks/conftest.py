"""pytest setup for benchmarks/: collects bench_*.py, adds --bench-quick and the bench_cpu
marker, and measures each device's copy bandwidth once per session (the floors' denominator)."""
import pytest

import ganloss_cuda.benchmark as gb
from ganloss_cuda import _build


def pytest_addoption(parser):
    parser.addoption("--bench-quick", action="store_true",
                     help="ganloss benchmarks: only the quick cases, few rounds")


def pytest_configure(config):
    config.addinivalue_line("markers", "bench_cpu: the small CPU benchmark set (run in CI)")


def pytest_collect_file(file_path, parent):
    """bench_*.py are test modules here (pyproject's python_files stays test_*.py)."""
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def bandwidth():
    """bandwidth(device) -> the copy-bandwidth probe of device, measured on first use."""
    probes = {}

    def get(device):
        if device not in probes:
            probes[device] = gb.bandwidth_probe(device)
        return probes[device]

    return get


@pytest.fixture(scope="session")
def csrc_sha256():
    csrc = _build.find_csrc()
    return _build.csrc_hash(csrc) if csrc else None

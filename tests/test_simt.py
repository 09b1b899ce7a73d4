"""The SIMT emulation tier (tests/simt/, docs/emulation.md): every CUDA kernel, compiled from its
unmodified source by g++, run on the CPU with one fiber per CUDA thread under AddressSanitizer and
UBSan, against the float64 reference, bitwise equal across schedules; the self-test kernels show
what the tier reports; gcov line coverage of csrc/cuda and csrc/common.

The cases run in worker processes that preload libasan (one per core, at most 2); each writes a
JSON line per case, so a case that crashes its worker is still named. GANLOSS_SIMT_RECORD=1 also
writes the result to ganloss_cuda/kernel_status.json (what `python -m ganloss_cuda.info` reports).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "simt"))
import build  # noqa: E402
import cases  # noqa: E402
import coverage_report  # noqa: E402
import run_cases  # noqa: E402

pytestmark = [pytest.mark.simt, pytest.mark.extension_not_loaded,
              pytest.mark.skipif(build.unavailable() is not None,
                                 reason=f"SIMT tier: {build.unavailable()}")]
WORKERS = max(1, min(2, os.cpu_count() or 1))
COVERAGE_GOAL = 95.0
# Seconds for one worker's cases, build excluded: they take about 50 s on 2 idle cores.
WORKER_TIMEOUT = 900


def _run_workers(out_dir: Path):
    """Builds the module once, then runs every case in WORKERS processes; returns (records by
    case, [(returncode, stderr tail, last started case)] of workers that failed)."""
    proc = subprocess.run([sys.executable, str(build.SIMT / "build.py")], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.fail(f"building the SIMT module failed:\n{(proc.stdout + proc.stderr)[-8000:]}")
    for gcda in build.build_dir().glob("*.gcda"):
        gcda.unlink()  # coverage of this run only
    workers = run_cases.start_workers(cases.CASES, WORKERS, out_dir, build.asan_env())
    records, crashed = {}, []
    for proc, out, err in workers:
        try:
            rc = proc.wait(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timeout"
        done, running = run_cases.read_records(out)
        records.update(done)
        if rc != 0:
            crashed.append((rc, err.read_text()[-6000:], running))
    return records, crashed


@pytest.fixture(scope="module")
def tier(tmp_path_factory):
    records, crashed = _run_workers(tmp_path_factory.mktemp("simt"))
    return records, crashed


@pytest.mark.parametrize("name", cases.CASES)
def test_case(tier, name):
    records, crashed = tier
    for rc, tail, started in crashed:
        if started == name:
            pytest.fail(f"the worker died in this case (exit {rc}):\n{tail}")
    assert name in records, f"not run: a worker died before it ({[c[::2] for c in crashed]})"
    assert records[name]["error"] is None, records[name]["error"]


def test_workers_exit_cleanly(tier):
    _, crashed = tier
    assert not crashed, "\n".join(f"exit {rc} in {started}:\n{tail}" for rc, tail, started in crashed)


def test_shared_memory_found(tier):
    """The __shared__ variables of the kernels were found (they are refilled with 0xff at every
    block start; the unwritten_shared self-test shows the effect)."""
    records, _ = tier
    found = {r["stats"]["shared_vars"] for r in records.values()}
    assert found and min(found) >= 2, found


@pytest.mark.parametrize("name", sorted(cases.CRASH_SELFTESTS))
def test_address_sanitizer_reports(name, tmp_path):
    """A kernel that writes past the end of its buffer is stopped by AddressSanitizer."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import build, torch; "
            "m = build.load(); m.selftest(sys.argv[2], torch.zeros(1000), 0)")
    proc = subprocess.run([sys.executable, "-c", code, str(build.SIMT), name],
                          env=build.asan_env(), capture_output=True, text=True, cwd=build.ROOT,
                          timeout=600)
    assert proc.returncode != 0
    assert cases.CRASH_SELFTESTS[name] in proc.stderr, proc.stderr[-4000:]
    assert "out_of_bounds_kernel" in proc.stderr  # the report names the kernel


def test_line_coverage(tier):
    """gcov line coverage of the CUDA kernels and the shared math: at least 95% of every file's
    lines that the tier compiles, over all of them together."""
    records, crashed = tier
    if crashed or any(r["error"] for r in records.values()):
        pytest.skip("coverage is judged on a passing run")
    report = coverage_report.collect(build.build_dir(), build.CSRC)
    print("\n" + coverage_report.format_table(report))
    total = report["total"]
    assert total["percent"] >= COVERAGE_GOAL, coverage_report.format_table(report)
    if os.environ.get("GANLOSS_SIMT_RECORD") == "1":
        coverage_report.record(records, report)

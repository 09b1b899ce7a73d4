"""feature_loss benchmarks under pytest-benchmark: provider x mode x case, cases from
ganloss_cuda.benchmark (the CPU set always, the GPU set when CUDA is available). Each benchmark
first checks its provider against the eager reference; see README.md in this folder."""
import itertools

import pytest
import torch

import ganloss_cuda.benchmark as gb

ROUNDS = {"cpu": (10, 2), "cuda": (50, 5), "quick": (3, 1)}  # (rounds, warm-up rounds)
_sets = {}  # input sets of the current (case, device); one entry, the GPU sets are large


def _params(quick):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        mark = pytest.mark.cuda if device == "cuda" else pytest.mark.bench_cpu
        for case in gb.cases_for(device, quick):
            for provider in gb.PROVIDERS:
                for mode in gb.MODES:
                    yield pytest.param(device, case, provider, mode, marks=mark,
                                       id=f"{device}-{case.group(mode)}-{provider}")


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        quick = metafunc.config.getoption("--bench-quick")
        metafunc.parametrize("device,case,provider,mode", list(_params(quick)))


def _input_sets(case, device):
    if (case, device) not in _sets:
        _sets.clear()
        _sets[(case, device)] = gb.input_sets(case, device)
    return _sets[(case, device)]


def test_feature_loss(benchmark, request, bandwidth, csrc_sha256, device, case, provider, mode):
    sets = _input_sets(case, device)
    try:  # checks loss and gradients against the eager reference (CorrectnessError), warms up
        fn, step, first_call_s = gb.prepare(provider, case, mode, *sets[0])
    except gb.CorrectnessError:
        raise
    except Exception as e:
        if provider == "reference_compiled":
            pytest.skip(f"torch.compile failed: {type(e).__name__}: {str(e).strip()[:200]}")
        raise
    rotation = itertools.cycle(sets)

    def run(xs, ys):
        step(xs, ys)
        gb.sync(device)

    rounds, warmup = ROUNDS["quick" if request.config.getoption("--bench-quick") else device]
    benchmark.group = case.group(mode)
    benchmark.pedantic(run, setup=lambda: (next(rotation), {}), rounds=rounds,
                       warmup_rounds=warmup)

    floor = case.floor_bytes(mode)
    probe = bandwidth(device)
    median = benchmark.stats.stats.median if benchmark.stats else None  # None when disabled
    benchmark.extra_info.update(
        device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
        csrc_sha256=csrc_sha256, floor_bytes=floor, floor_ms=floor / probe["gbps"] / 1e6,
        copy_gbps=probe["gbps"], achieved_gbps=floor / median / 1e9 if median else None,
        peak_mem_bytes=gb.peak_memory(step, *sets[0], device), first_call_s=first_call_s,
        note=gb.provider_note(device) if provider == "ganloss" else None)

"""nvcc compiles of csrc/ (no GPU needed): every .cu for sm_80 and sm_90 with ptxas -v (warnings
are errors, no register spills, no stack), the SASS checks of tools/sass_report.py on every kernel
of those objects (no local memory, 16-byte loads in flight before the first store of each
streaming loop, no 64-bit division; tensor cores in exactly the wmma instantiations of the Gram
GEMMs, whose tiled main loops are not streaming loops), every torch-facing host file in
csrc/cuda/, the ptxas and
SASS parsers (on a sample and on a deliberately bad kernel), that docs/sass-report.md matches the
kernel sources, and the CUDA arch flags the build gives nvcc. Sources are found by globbing, so a
new loss family's files are compiled and checked here without an edit."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

from _subprocess import CSRC, ROOT, package_module

pytestmark = pytest.mark.extension_not_loaded
_build = package_module("_build")
_spec = importlib.util.spec_from_file_location("_sass_report", ROOT / "tools" / "sass_report.py")
sass = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sass)
NVCC = _build.nvcc_path()
CU_FILES = sorted(CSRC.glob("**/*.cu"))
# The torch-facing host side of the CUDA kernels: one <family>_api.cpp per loss family.
HOST_FILES = sorted((CSRC / "cuda").glob("*.cpp"))
ARCHS = sass.ARCHS
# sass_report's code generation flags (torch's defines, C++17: the standard of the torch 2.11 on
# the GPU machine, the stricter of the two in use; sm_80 and sm_90, ptxas -v), warnings as errors.
CU_FLAGS = [*sass.NVCC_FLAGS, "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra,-Werror"]
HOST_FLAGS = ["-c", "-std=c++17", "-O3", "-Werror", "all-warnings",
              "-Xcompiler", "-Wall,-Wextra,-Werror"]

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")
SASS_TOOLS = sass.find_tool("cuobjdump") and sass.find_tool("nvdisasm")
needs_sass_tools = pytest.mark.skipif(
    not SASS_TOOLS, reason="cuobjdump/nvdisasm not found on PATH or in a pip package "
    "(pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm, in the test extra)")


def _cuda_include():
    from torch.utils.cpp_extension import CUDA_HOME

    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), CUDA_HOME,
             str(Path(NVCC).resolve().parent.parent) if NVCC else None, "/usr/local/cuda"]
    for home in homes:
        if home and (Path(home) / "include" / "cuda_runtime_api.h").is_file():
            return str(Path(home) / "include")
    return None  # nvcc's own include path still applies


def _host_includes(tmp):
    """-isystem for torch, Python, CUDA and a stand-in for the header the CPU torch wheel lacks,
    so that only warnings in csrc/ are errors."""
    import torch
    from torch.utils import cpp_extension

    stub = tmp / "stub_include" / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text("#pragma once\n")
    dirs = [*cpp_extension.include_paths(), sysconfig.get_paths()["include"],
            str(tmp / "stub_include")]
    if _cuda_include():
        dirs.append(_cuda_include())
    flags = [f for d in dirs for f in ("-isystem", d)]
    abi = int(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True))
    return flags + [f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]


@pytest.fixture(scope="module")
def nvcc_runs(tmp_path_factory):
    """Starts every nvcc compile at once (each .cu for both archs in one call, the host files
    beside them) and returns {source: (returncode, output, seconds, command)}."""
    if NVCC is None:
        pytest.skip("nvcc not found")
    tmp = tmp_path_factory.mktemp("nvcc")
    jobs = {}
    for i, src in enumerate([*CU_FILES, *HOST_FILES]):
        flags = CU_FLAGS if src.suffix == ".cu" else HOST_FLAGS + _host_includes(tmp)
        cmd = [NVCC, *flags, str(src), "-o", str(tmp / f"{i}_{src.stem}.o")]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        jobs[src] = (proc, time.time(), cmd)
    results = {}
    for src, (proc, start, cmd) in jobs.items():
        out, _ = proc.communicate(timeout=1200)
        results[src] = (proc.returncode, out, time.time() - start, cmd)
    return results


parse_ptxas = sass.parse_ptxas


def format_table(records):
    names = sass.demangle(sorted({r["name"] for r in records}))
    archs = sorted({r["arch"] for r in records if r["arch"]})
    rows = {}
    for r in records:
        rows.setdefault(names[r["name"]], {})[r["arch"]] = r
    width = max([len("kernel")] + [len(n) for n in rows])
    head = f"{'kernel':<{width}}" + "".join(f" | {a:>5} regs spill st/ld stack" for a in archs)
    lines = [head, "-" * len(head)]
    for name in sorted(rows):
        cells = []
        for a in archs:
            r = rows[name].get(a)
            if r is None:
                cells.append(f" | {'-':>10} {'-':>11} {'-':>5}")
            else:
                regs = "-" if r["registers"] is None else r["registers"]
                spill = f"{r['spill_stores']}/{r['spill_loads']}"
                cells.append(f" | {regs:>10} {spill:>11} {r['stack']:>5}")
        lines.append(f"{name:<{width}}" + "".join(cells))
    return "\n".join(lines)


def _show(capsys, text):
    """Print to the terminal even under pytest's output capture (no -s needed)."""
    with capsys.disabled():
        print("\n" + text, flush=True)


@pytest.mark.nvcc
@needs_nvcc
@pytest.mark.parametrize("src", CU_FILES, ids=[p.relative_to(CSRC).as_posix() for p in CU_FILES])
def test_nvcc_cu_compiles_without_spills(src, nvcc_runs, record_property, capsys):
    rc, out, seconds, cmd = nvcc_runs[src]
    record_property("nvcc_seconds", round(seconds, 1))
    assert rc == 0, f"nvcc failed ({rc}):\n{' '.join(cmd)}\n{out}"
    records = parse_ptxas(out)
    assert records, f"no ptxas -v report in the nvcc output:\n{out}"
    kernels = [r for r in records if r["registers"] is not None]
    assert {r["arch"] for r in kernels} == set(ARCHS), f"expected kernels for {ARCHS}:\n{out}"
    table = format_table(records)
    record_property("ptxas_table", table)
    record_property("ptxas", json.dumps(records))
    _show(capsys, f"ptxas: {src.relative_to(ROOT)} ({seconds:.0f} s, {len(kernels)} kernel "
                  f"builds)\n{table}")
    spills = [r for r in records if r["spill_stores"] or r["spill_loads"] or r["stack"]]
    assert not spills, "register spills or stack:\n" + format_table(spills)


@pytest.mark.nvcc
@needs_nvcc
@pytest.mark.parametrize("src", HOST_FILES,
                         ids=[p.relative_to(CSRC).as_posix() for p in HOST_FILES])
def test_nvcc_host_file_compiles(src, nvcc_runs, record_property):
    rc, out, seconds, cmd = nvcc_runs[src]
    record_property("nvcc_seconds", round(seconds, 1))
    assert rc == 0, f"nvcc failed ({rc}):\n{' '.join(cmd)}\n{out}"


@pytest.fixture(scope="module")
def sass_rows(nvcc_runs, tmp_path_factory):
    """{.cu source: sass_report.kernel_rows} of the objects nvcc_runs built (no second compile)."""
    if not SASS_TOOLS:
        pytest.skip("cuobjdump/nvdisasm not found")
    tmp = tmp_path_factory.mktemp("sass")
    rows = {}
    for i, src in enumerate(CU_FILES):
        rc, out, _, cmd = nvcc_runs[src]
        if rc == 0:
            rows[src] = sass.kernel_rows(src.relative_to(ROOT).as_posix(), cmd[-1], out,
                                         tmp / str(i))
    return rows


@pytest.mark.nvcc
@needs_nvcc
@needs_sass_tools
@pytest.mark.parametrize("src", CU_FILES, ids=[p.relative_to(CSRC).as_posix() for p in CU_FILES])
def test_sass_of_every_kernel(src, sass_rows):
    """No local memory, MIN_LOADS_IN_FLIGHT 16-byte loads before the first store of every
    streaming loop, no 64-bit division: in every kernel, for every arch."""
    if src not in sass_rows:
        pytest.fail("nvcc failed (see test_nvcc_cu_compiles_without_spills)")
    rows = sass_rows[src]
    assert {r["fn"].arch for r in rows} == set(ARCHS)
    names = sass.demangle(sorted({r["fn"].name for r in rows}))
    bad = [f"{names[r['fn'].name]} ({r['fn'].arch}): {'; '.join(r['problems'])}"
           for r in rows if r["problems"]]
    assert not bad, "SASS checks failed:\n" + "\n".join(bad)


@pytest.mark.nvcc
@needs_nvcc
@needs_sass_tools
def test_gram_gemm_engines(sass_rows):
    """The Gram GEMM kernels use tensor cores (HMMA) exactly where their engine is wmma: fp16,
    bf16 and tf32 (<float, true>); the exact fp32 (<float, false>) and fp64 ones are FFMA only, so
    fp32 results never silently lose precision to TF32."""
    rows = [r for src, rs in sass_rows.items() if src.name == "gram.cu" for r in rs]
    names = sass.demangle(sorted({r["fn"].name for r in rows}))
    gemms = [r for r in rows if re.search(r"gram_(partials|backward)_kernel", names[r["fn"].name])]
    assert len(gemms) == 2 * 5 * len(ARCHS), sorted({names[r["fn"].name] for r in gemms})
    for r in gemms:
        name = names[r["fn"].name]
        tensor = re.search(r"<(__half|__nv_bfloat16), false>|<float, true>", name) is not None
        assert (sass.mma_count(r["fn"]) > 0) == tensor, (name, r["fn"].arch, sass.mma_count(r["fn"]))


# One kernel per check that must fail, and one that passes them all.
SYNTHETIC_CU = r"""
#include <cstdint>

__global__ void per_element_div64(const float* x, float* y, int64_t n, int64_t d) {
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[(i / d) % n];
}

__global__ void load_then_store(const float4* x, float4* y, int n) {
#pragma unroll 1
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float4 v = x[i];
    v.x *= 2.f;
    y[i] = v;
  }
}

__global__ void local_array(float* y, int k) {
  float a[64];
  for (int i = 0; i < 64; ++i) a[(i * k) & 63] = y[i];
  y[0] = a[k & 63];
}

__global__ void loads_in_flight(const float4* x, float4* y, int n) {
  for (int i = threadIdx.x; i < n; i += 4 * blockDim.x) {
    float4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      if (i + u * blockDim.x < n) v[u] = x[i + u * blockDim.x];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (i + u * blockDim.x < n) {
        v[u].x *= 2.f;
        y[i + u * blockDim.x] = v[u];
      }
    }
  }
}
"""


@pytest.mark.nvcc
@needs_nvcc
@needs_sass_tools
def test_sass_checks_flag_bad_kernels(tmp_path):
    src, obj = tmp_path / "synthetic.cu", tmp_path / "synthetic.o"
    src.write_text(SYNTHETIC_CU)
    rc, out = sass.compile_cu(src, obj, nvcc=NVCC)
    assert rc == 0, out
    rows = sass.kernel_rows("synthetic.cu", obj, out, tmp_path / "sass")
    assert {r["fn"].arch for r in rows} == set(ARCHS)
    for r in rows:
        problems, name = " ".join(r["problems"]), r["fn"].name
        if "per_element_div64" in name:
            assert "64-bit division" in problems, problems
        elif "load_then_store" in name:
            assert "16-byte loads before the first store" in problems, problems
            assert [s.loads16_before_store for s in r["loops"]] == [1], r["loops"]
        elif "local_array" in name:
            assert "local-memory" in problems and r["ptxas"]["stack"] > 0, (problems, r["ptxas"])
        else:
            assert "loads_in_flight" in name and not problems, (name, problems)
            assert [s.loads16_before_store for s in r["loops"]] == [4], r["loops"]


def test_sass_report_matches_kernel_sources():
    """docs/sass-report.md is stamped with the hash of the sources nvcc compiles (csrc/**/*.cu and
    what they include); compiler versions do not enter the stamp."""
    text = sass.REPORT.read_text() if sass.REPORT.is_file() else ""
    assert sass.stamp_of(text) == sass.sources_hash(), (
        f"{sass.REPORT.relative_to(ROOT)} is not the report of the current kernel sources: run "
        "`python tools/sass_report.py` (needs nvcc, cuobjdump, nvdisasm) and commit it")


def test_parse_ptxas_sample():
    sample = textwrap.dedent("""\
        ptxas info    : 0 bytes gmem
        ptxas info    : Function properties for helper
            8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
        ptxas info    : Compiling entry function '_Z1kv' for 'sm_80'
        ptxas info    : Function properties for _Z1kv
            0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 40 registers, used 0 barriers, 352 bytes cmem[0]
        ptxas info    : Compile time = 1.000 ms
        ptxas info    : 0 bytes gmem
        ptxas info    : Compiling entry function '_Z1kv' for 'sm_90'
        ptxas info    : Function properties for _Z1kv
            16 bytes stack frame, 12 bytes spill stores, 8 bytes spill loads
        ptxas info    : Used 255 registers, used 1 barriers, 352 bytes cmem[0]
        """)
    got = {(r["name"], r["arch"]): r for r in parse_ptxas(sample)}
    assert set(got) == {("helper", "sm_80"), ("_Z1kv", "sm_80"), ("_Z1kv", "sm_90")}
    assert got[("helper", "sm_80")]["spill_stores"] == 4
    assert got[("_Z1kv", "sm_80")]["registers"] == 40
    assert (got[("_Z1kv", "sm_90")]["registers"], got[("_Z1kv", "sm_90")]["spill_stores"],
            got[("_Z1kv", "sm_90")]["spill_loads"], got[("_Z1kv", "sm_90")]["stack"]) == (255, 12, 8, 16)
    table = format_table(list(got.values()))
    assert "\nk " in table or shutil.which("c++filt") is None, table  # demangled, no parameters


# The archs the build asks nvcc for when TORCH_CUDA_ARCH_LIST is unset and no GPU is visible:
# every arch the installed nvcc lists (--list-gpu-arch) from sm_80 up, plus PTX for the newest.
NVCC_11_8_ARCHS = "\n".join(f"compute_{a}" for a in (35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75,
                                                       80, 86, 87, 89, 90)) + "\n"
NVCC_12_8_ARCHS = "\n".join(f"compute_{a}" for a in (50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86,
                                                       87, 89, 90, 100, 101, 120)) + "\n"
# nvcc 13.0 lists compute_110 before compute_103.
NVCC_13_0_ARCHS = "\n".join(f"compute_{a}" for a in (75, 80, 86, 87, 88, 89, 90, 100, 110, 103,
                                                       120, 121)) + "\n"


def _gencode(archs, ptx):
    """The -gencode flags nvcc gets for SASS of `archs` and PTX of `ptx`."""
    return ([f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
            + [f"-gencode=arch=compute_{ptx},code=compute_{ptx}"])


@pytest.mark.parametrize("listing, archs", [
    (NVCC_11_8_ARCHS, [80, 86, 87, 89, 90]),
    (NVCC_12_8_ARCHS, [80, 86, 87, 89, 90, 100, 101, 120]),
    (NVCC_13_0_ARCHS, [80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121]),
    ("compute_80\ncompute_90\ncompute_90a\ncompute_100f\n", [80, 90]),
], ids=["nvcc11.8", "nvcc12.8", "nvcc13.0", "suffixed"])
def test_default_arch_flags_from_nvcc_listing(listing, archs):
    assert _build.default_arch_flags(_build.nvcc_archs(listing)) == _gencode(archs, archs[-1])


def test_default_arch_flags_need_sm_80():
    with pytest.raises(RuntimeError, match="TORCH_CUDA_ARCH_LIST"):
        _build.default_arch_flags(_build.nvcc_archs("compute_70\ncompute_75\n"))


@needs_nvcc
def test_nvcc_flags_without_arch_list_or_gpu(monkeypatch):
    """torch picks the archs of the visible GPUs when TORCH_CUDA_ARCH_LIST is unset and fails
    with IndexError when there are none; nvcc_flags() then names every arch of the installed nvcc
    from sm_80 up, and torch adds no arch flags of its own."""
    import torch
    from torch.utils.cpp_extension import _get_cuda_arch_flags

    if torch.cuda.device_count() > 0:
        pytest.skip("a GPU is visible: torch's own rule applies")
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    listed = _build.nvcc_archs(subprocess.run([NVCC, "--list-gpu-arch"], capture_output=True,
                                              text=True, check=True).stdout)
    from_80 = [a for a in listed if a >= 80]
    assert from_80, f"nvcc lists no arch from sm_80 up: {listed}"
    flags = _build.nvcc_flags()
    assert flags[-len(from_80) - 1:] == _gencode(from_80, max(listed))
    assert _get_cuda_arch_flags(flags) == []

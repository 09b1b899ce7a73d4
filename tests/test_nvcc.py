"""nvcc compiles of csrc/ (no GPU needed): every .cu for sm_80 and sm_90 with ptxas -v (warnings
are errors, no register spills), every torch-facing host file in csrc/cuda/, the ptxas report
parser, and the CUDA arch flags the build gives nvcc. Sources are found by globbing, so a new loss
family's files are compiled here without an edit."""
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
NVCC = _build.nvcc_path()
CU_FILES = sorted(CSRC.glob("**/*.cu"))
# The torch-facing host side of the CUDA kernels: one <family>_api.cpp per loss family.
HOST_FILES = sorted((CSRC / "cuda").glob("*.cpp"))
ARCHS = ("sm_80", "sm_90")
# torch's extension builds define these (no implicit __half/__nv_bfloat16 arithmetic); C++17 is
# the standard of the torch 2.11 on the GPU machine, the stricter of the two in use.
TORCH_NVCC_DEFINES = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                      "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__"]
CU_FLAGS = ["-c", "-std=c++17", "-O3", "--expt-relaxed-constexpr", *TORCH_NVCC_DEFINES,
            "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
            "-Xptxas", "-v", "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra,-Werror"]
HOST_FLAGS = ["-c", "-std=c++17", "-O3", "-Werror", "all-warnings",
              "-Xcompiler", "-Wall,-Wextra,-Werror"]

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


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


def _enum_names():
    """{(enum, value): enumerator} of the `enum class`es in csrc/ headers, for template args."""
    names = {}
    for header in CSRC.glob("**/*.h"):
        text = re.sub(r"//[^\n]*", "", header.read_text(errors="replace"))
        for enum, body in re.findall(r"enum\s+class\s+(\w+)[^{;]*\{([^}]*)\}", text):
            for key, value in re.findall(r"(\w+)\s*=\s*(\d+)", body):
                names[(enum, value)] = f"{enum}::{key}"
    return names


def _demangle(names):
    """Short readable kernel names: c++filt when present, minus namespaces and parameters, with
    enum template arguments by name."""
    out = dict(zip(names, names))
    cxxfilt = shutil.which("c++filt")
    if cxxfilt and names:
        enums = _enum_names()
        res = subprocess.run([cxxfilt], input="\n".join(names) + "\n", capture_output=True,
                             text=True)
        if res.returncode == 0 and len(res.stdout.splitlines()) == len(names):
            for name, pretty in zip(names, res.stdout.splitlines()):
                pretty = re.sub(r"^void ", "", pretty)
                pretty = pretty.replace("(anonymous namespace)::", "").replace("ganloss::", "")
                pretty = re.sub(r"\((FeatureLaunch)?\)$", "", pretty)
                pretty = re.sub(r"\((\w+)\)(\d+)",
                                lambda m: enums.get(m.groups(), m.group(0)), pretty)
                out[name] = pretty
    return out


def parse_ptxas(output):
    """ptxas -v output -> [{name, arch, registers, spill_stores, spill_loads, stack}], one per
    function and arch (entry functions and any non-inlined device functions)."""
    records, by_key = [], {}
    arch, current, pending = None, None, []

    def record(name):
        key = (name, arch)
        if key not in by_key:
            by_key[key] = {"name": name, "arch": arch, "registers": None, "spill_stores": 0,
                           "spill_loads": 0, "stack": 0}
            records.append(by_key[key])
            if arch is None:
                pending.append(by_key[key])
        return by_key[key]

    for line in output.splitlines():
        if re.search(r"ptxas info\s*: \d+ bytes gmem", line):  # a new ptxas run (next arch)
            arch, current = None, None
            continue
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\w+)'", line)
        if m:
            arch = m.group(2)
            for r in pending:  # functions listed before the run's first entry function
                by_key.pop((r["name"], None), None)
                r["arch"] = arch
                by_key[(r["name"], arch)] = r
            pending.clear()
            current = record(m.group(1))
            continue
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            current = record(m.group(1))
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      line)
        if m and current is not None:
            current["stack"], current["spill_stores"], current["spill_loads"] = map(int, m.groups())
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and current is not None:
            current["registers"] = int(m.group(1))
    return records


def format_table(records):
    names = _demangle(sorted({r["name"] for r in records}))
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
    spills = [r for r in records if r["spill_stores"] or r["spill_loads"]]
    assert not spills, "register spills:\n" + format_table(spills)


@pytest.mark.nvcc
@needs_nvcc
@pytest.mark.parametrize("src", HOST_FILES,
                         ids=[p.relative_to(CSRC).as_posix() for p in HOST_FILES])
def test_nvcc_host_file_compiles(src, nvcc_runs, record_property):
    rc, out, seconds, cmd = nvcc_runs[src]
    record_property("nvcc_seconds", round(seconds, 1))
    assert rc == 0, f"nvcc failed ({rc}):\n{' '.join(cmd)}\n{out}"


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

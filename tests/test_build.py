"""Build checks: nvcc compiles of csrc/ (warnings are errors, no register spills), the JIT build
from a clean cache, the pure-torch fallback, and `python -m ganloss_cuda.info`.

Everything that imports ganloss_cuda runs in a subprocess with a controlled environment, so the
loader sees a fresh interpreter each time and this module never triggers a build by importing
the package. No GPU is needed: the nvcc checks only compile.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
# docs/gpu-results.md's example of the csrc_sha256 definition: a tree and its hash.
CSRC_HASH_EXAMPLE = ({"ganloss.cpp": b"int a;\n", "cpu/empty.h": b"", "cpu/feature.cpp": b"x"},
                     "e5aa9617a0009963fa1ee9bfac3ae85b42ff6b4e1e4396fc0b8c6044e0cab700")

# ganloss_cuda/_build.py on its own (as setup.py loads it): importing the package here would run
# the loader in the test process.
_spec = importlib.util.spec_from_file_location("_ganloss_build", ROOT / "ganloss_cuda" / "_build.py")
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)


@pytest.fixture(scope="module", autouse=True)
def _extension_loaded():
    """Overrides the conftest fixture that fails when the pytest process has no extension loaded:
    these tests load (or disable) the extension in their own subprocesses, and a stale or broken
    build is exactly what they must be able to report."""


def _env(**overrides):
    """os.environ without any GANLOSS_CUDA_* setting, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANLOSS_CUDA_")}
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def _python(code, env, timeout=600, args=()):
    """Runs python -c code (or python args when code is None) in the repo root."""
    cmd = [sys.executable, *(args if code is None else ("-c", textwrap.dedent(code)))]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.time() - start


def _last_json(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in the output:\n{stdout}"
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------
# 1. nvcc: every .cu for sm_80 + sm_90 and the torch-facing cuda/api.cpp, warnings are errors.
# --------------------------------------------------------------------------------------------

NVCC = _build.nvcc_path()
CU_FILES = sorted(CSRC.glob("**/*.cu"))
API_CPP = CSRC / "cuda" / "api.cpp"
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
    """Starts every nvcc compile at once (each .cu for both archs in one call, api.cpp beside
    them) and returns {source: (returncode, output, seconds, command)}."""
    if NVCC is None:
        pytest.skip("nvcc not found")
    tmp = tmp_path_factory.mktemp("nvcc")
    jobs = {}
    for i, src in enumerate([*CU_FILES, API_CPP]):
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
def test_nvcc_api_cpp_compiles(nvcc_runs, record_property):
    rc, out, seconds, cmd = nvcc_runs[API_CPP]
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


# --------------------------------------------------------------------------------------------
# 2. JIT build from a clean cache, then a load from that cache.
# --------------------------------------------------------------------------------------------

JIT_SCRIPT = """
    import json, warnings
    import torch
    warnings.simplefilter("error", UserWarning)  # a FallbackWarning would fail the run
    import ganloss_cuda
    from ganloss_cuda import _ext, reference
    assert _ext.build_info.get("source") == "jit", (_ext.load_error, _ext.build_info)
    assert ganloss_cuda.available() and _ext.has_kernel("feature_loss", "cpu")
    g = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        x = [torch.randn(2, 3, 4, 5, generator=g, dtype=dtype), torch.randn(2, 7, generator=g, dtype=dtype)]
        y = [torch.randn(t.shape, generator=g, dtype=dtype) for t in x]
        for criterion in ("l1", "mse", "charbonnier", "fro"):
            xs = [t.clone().requires_grad_() for t in x]
            got = ganloss_cuda.feature_loss(xs, y, weights=[0.5, 2.0], criterion=criterion)
            xr = [t.clone().requires_grad_() for t in x]
            ref = reference.feature_loss(xr, y, weights=[0.5, 2.0], criterion=criterion)
            torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
            got.backward(); ref.backward()
            for a, b in zip(xs, xr):
                torch.testing.assert_close(a.grad, b.grad, rtol=tol, atol=tol)
    print(json.dumps(_ext.build_info))
"""


def _count(pattern, text):
    return len(re.findall(pattern, text, flags=re.M))


@pytest.mark.slow
def test_jit_build_from_clean_cache(tmp_path, record_property):
    env = _env(GANLOSS_CUDA_JIT=1, GANLOSS_CUDA_CACHE=tmp_path, GANLOSS_CUDA_STRICT=1)
    proc, first = _python(JIT_SCRIPT, env, timeout=1800)
    record_property("first_run_seconds", round(first, 1))
    assert proc.returncode == 0, f"JIT build failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert _count(r"^ganloss_cuda: compiling ", proc.stderr) == 1, proc.stderr
    assert _count(r"^ganloss_cuda: built in \d+ s$", proc.stderr) == 1, proc.stderr
    info = _last_json(proc.stdout)
    assert info["source"] == "jit" and info["build_seconds"] > 0
    assert info["csrc_sha256"] == _build.csrc_hash(CSRC)
    library = Path(info["path"])
    assert library.is_file() and tmp_path in library.parents

    proc, second = _python(JIT_SCRIPT, env, timeout=600)
    record_property("cached_run_seconds", round(second, 1))
    assert proc.returncode == 0, f"cached load failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert _count(r"^ganloss_cuda: compiling ", proc.stderr) == 0, proc.stderr
    assert _count(r"^ganloss_cuda: built in ", proc.stderr) == 0, proc.stderr
    info2 = _last_json(proc.stdout)
    assert info2["source"] == "jit" and info2["build_seconds"] == 0 and info2["path"] == str(library)


# --------------------------------------------------------------------------------------------
# 3. The pure-torch fallback.
# --------------------------------------------------------------------------------------------

FALLBACK_SCRIPT = """
    import json, warnings
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import ganloss_cuda
        from ganloss_cuda import functional, reference
        assert not ganloss_cuda.available()
        checks = 0
        dt = torch.float64
        g = torch.Generator().manual_seed(0)
        rand = lambda *s: torch.randn(*s, generator=g, dtype=dt)
        close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

        # functional.feature_loss: every criterion and reduction, with and without masks.
        x = [rand(2, 3, 4, 5), rand(2, 6, 3), rand(2, 0, 4)]
        y = [rand(*t.shape) for t in x]
        full = [torch.rand(t.shape, generator=g, dtype=dt) for t in x]
        one_channel = [torch.rand(2, 1, 4, 5, generator=g, dtype=dt), None,
                       torch.rand(2, 0, 4, generator=g, dtype=dt)]
        weights = [0.25, 1.5, 3.0]
        for criterion in reference.CRITERIA:
            for reduction in reference.REDUCTIONS:
                mask_sets = [None] if criterion == "fro" else [None, full, one_channel]
                for masks in mask_sets:
                    xs = [t.clone().requires_grad_() for t in x]
                    got = functional.feature_loss(xs, y, weights, criterion, reduction, masks)
                    ref = reference.feature_loss(x, y, weights, criterion, reduction, masks)
                    assert torch.equal(got, ref), (criterion, reduction, got, ref)
                    assert got.shape == ((2,) if reduction == "per_sample" else ())
                    got.sum().backward()
                    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in xs if t.numel())
                    checks += 1
        # Independent formulas for a few of them.
        d = x[0] - y[0]
        close(functional.feature_loss(x[0], y[0]), d.abs().mean())
        close(functional.feature_loss(x[0], y[0], criterion="mse", reduction="sum"), (d * d).sum())
        close(functional.feature_loss(x[0], y[0], criterion="fro"), d.norm())
        m = one_channel[0]
        close(functional.feature_loss([x[0]], [y[0]], masks=[m]),
              (d.abs() * m).sum() / m.expand_as(d).sum())
        checks += 4

        def module_check(module, args, ref_fn, grad_of):
            global checks
            args_ref = [[t.detach().clone().requires_grad_(t.requires_grad) for t in a]
                        if isinstance(a, list) else a for a in args]
            out = module(*args)
            ref = ref_fn(*args_ref)
            close(out, ref)
            out.sum().backward()
            ref.sum().backward()
            for a, b in zip(grad_of(args), grad_of(args_ref)):
                assert a.grad is not None
                close(a.grad, b.grad)
            checks += 1

        eps = 1e-6
        pred, target = rand(2, 3, 8, 8), rand(2, 3, 8, 8)
        weight = torch.rand(2, 1, 8, 8, generator=g, dtype=dt)
        formulas = {
            ganloss_cuda.L1Loss: lambda d: d.abs(),
            ganloss_cuda.MSELoss: lambda d: d * d,
            ganloss_cuda.CharbonnierLoss: lambda d: torch.sqrt(d * d + eps),
        }
        for cls, rho in formulas.items():
            for reduction in ("mean", "sum", "none"):
                for w in (None, weight):
                    kwargs = {"eps": eps} if cls is ganloss_cuda.CharbonnierLoss else {}
                    module = cls(loss_weight=0.5, reduction=reduction, **kwargs)
                    def ref_fn(ps, ts, rho=rho, reduction=reduction, w=w):
                        e = rho(ps[0] - ts[0]) * (1 if w is None else w)
                        if reduction == "none":
                            return 0.5 * e
                        if reduction == "sum":
                            return 0.5 * e.sum()
                        return 0.5 * (e.mean() if w is None else e.sum() / w.expand_as(e).sum())
                    p = pred.clone().requires_grad_()
                    module_check(lambda ps, ts: module(ps[0], ts[0], w), [[p], [target]],
                                 ref_fn, lambda a: a[0])

        vgg_w = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
        xf = [rand(2, 4 * 2 ** i, 16 // 2 ** i, 16 // 2 ** i).requires_grad_() for i in range(5)]
        yf = [rand(*t.shape) for t in xf]
        module_check(ganloss_cuda.VGGLoss(), [xf, yf],
                     lambda a, b: sum(w * (s - t).abs().mean() for w, s, t in zip(vgg_w, a, b)),
                     lambda a: a[0])

        def scales():
            return [[rand(2, 8, 16 // 2 ** s, 16 // 2 ** s), rand(2, 16, 8 // 2 ** s, 8 // 2 ** s),
                     rand(2, 1, 4, 4)] for s in range(2)]
        fake = [[t.requires_grad_() for t in scale] for scale in scales()]
        real = scales()
        for style, coef in (("pix2pixhd", 0.5 * (4 / 4) * 10.0), ("spade", 10.0 / 2)):
            for t in (t for scale in fake for t in scale):
                t.grad = None
            fm = ganloss_cuda.FeatureMatchingLoss(style=style)
            out = fm(fake, real)
            ref = sum(coef * (f - r).abs().mean()
                      for fs, rs in zip(fake, real) for f, r in zip(fs[:-1], rs[:-1]))
            close(out, ref.detach())
            out.backward()
            for fs, rs in zip(fake, real):
                for f, r in zip(fs[:-1], rs[:-1]):
                    close(f.grad, coef * torch.sign(f - r).detach() / f.numel())
                assert fs[-1].grad is None  # the logits are skipped
            checks += 1

    fallback = [w for w in caught if issubclass(w.category, ganloss_cuda.FallbackWarning)]
    print(json.dumps({"fallback_warnings": len(fallback), "checks": checks,
                      "messages": [str(w.message) for w in fallback],
                      "load_error": ganloss_cuda.load_error}))
"""


def test_fallback_when_disabled(record_property):
    proc, seconds = _python(FALLBACK_SCRIPT, _env(GANLOSS_CUDA_DISABLE=1), timeout=600)
    record_property("seconds", round(seconds, 1))
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = _last_json(proc.stdout)
    assert result["checks"] >= 50
    assert result["fallback_warnings"] == 1, result["messages"]
    assert "GANLOSS_CUDA_DISABLE" in result["messages"][0]
    assert "GANLOSS_CUDA_DISABLE" in result["load_error"]
    assert "compiling" not in proc.stderr


def test_strict_disable_raises_at_import():
    code = """
        try:
            import ganloss_cuda
        except RuntimeError as e:
            print("RuntimeError:", e)
        else:
            raise SystemExit("import ganloss_cuda did not raise")
    """
    proc, _ = _python(code, _env(GANLOSS_CUDA_DISABLE=1, GANLOSS_CUDA_STRICT=1), timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "RuntimeError:" in proc.stdout and "GANLOSS_CUDA_DISABLE" in proc.stdout, proc.stdout
    assert "GANLOSS_CUDA_STRICT" in proc.stdout, proc.stdout


def test_no_jit_never_compiles(tmp_path):
    code = """
        import json, warnings
        import torch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import ganloss_cuda
            loss = ganloss_cuda.feature_loss(torch.ones(2, 3), torch.zeros(2, 3))
            assert float(loss) == 1.0
        fallback = [str(w.message) for w in caught
                    if issubclass(w.category, ganloss_cuda.FallbackWarning)]
        print(json.dumps({"available": ganloss_cuda.available(), "messages": fallback}))
    """
    cache = tmp_path / "cache"
    cache.mkdir()
    env = _env(GANLOSS_CUDA_NO_JIT=1, GANLOSS_CUDA_JIT=1, GANLOSS_CUDA_CACHE=cache)
    proc, _ = _python(code, env, timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = _last_json(proc.stdout)
    assert not result["available"]
    assert len(result["messages"]) == 1 and "GANLOSS_CUDA_NO_JIT" in result["messages"][0]
    assert "compiling" not in proc.stderr and "built in" not in proc.stderr, proc.stderr
    assert list(cache.rglob("*")) == [], "the cache was written to"


# --------------------------------------------------------------------------------------------
# 4. python -m ganloss_cuda.info and the csrc hash.
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def info_output():
    # NO_JIT: the setup.py build when it is fresh, else the fallback; never a compile.
    proc, _ = _python(None, _env(GANLOSS_CUDA_NO_JIT=1), timeout=300,
                      args=("-m", "ganloss_cuda.info"))
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    facts = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        facts[key] = value.strip()
    return facts


def test_info_prints_csrc_hash(info_output):
    assert info_output.get("csrc_sha256") == _build.csrc_hash(CSRC), info_output
    assert info_output.get("csrc") == str(CSRC)
    assert re.fullmatch(r"[0-9a-f]{64}", info_output["csrc_sha256"])


def test_csrc_hash_matches_documented_definition(tmp_path):
    """_build.csrc_hash gives docs/gpu-results.md's example value; a symbolic link (not a regular
    file) in the tree changes nothing."""
    files, want = CSRC_HASH_EXAMPLE
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "cpu" / "link.h").symlink_to(tmp_path / "ganloss.cpp")
    assert _build.csrc_hash(tmp_path) == want
    assert want in (ROOT / "docs" / "gpu-results.md").read_text()


# --------------------------------------------------------------------------------------------
# 5. Build defaults: CUDA archs when no GPU is visible, package dependencies.
# --------------------------------------------------------------------------------------------

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


def test_numpy_is_a_dependency():
    """torch warns "Failed to initialize NumPy" at import without it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"numpy\b", dep) for dep in project["dependencies"])

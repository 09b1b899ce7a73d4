"""One GPU run -> one results file (docs/gpu-results.md), in about 8 minutes.

    GIT_COMMIT=$(git rev-parse HEAD) python tools/gpu_run.py [--out DIR] [--aot]
    python tools/gpu_run.py --dry-run --out /tmp/r   # CPU rehearsal of the same path

Stages, each timed, each failure recorded and the run carried on, the file rewritten after each:
1. JIT build of csrc/ (GANLOSS_CUDA_JIT=1, TORCH_CUDA_ARCH_LIST=9.0 unless set) in a child
   process, timed; later stages load it from the cache.
2. `python -m ganloss_cuda`'s self-checks of every family on CUDA (-> `kernels`).
3. In parallel: `pytest tests -m cuda` (junit -> `tests`) and compute-sanitizer (memcheck,
   racecheck, initcheck, synccheck) on tools/sanitize_case.py when it is on PATH.
4. Every family's GPU benchmark set (ganloss_cuda.benchmark.SUITES) and the copy-bandwidth
   probe, nothing else running.
5. The whole test suite (junit -> `tests_all`), then with --aot a setup.py build (pip wheel of a
   temporary copy of the tree), while time is left.
The file is $OUT/<gpu-slug>-<YYYYMMDD>-<csrc sha256[:12]>.json (or --out DIR); a short summary
table is printed last. --dry-run runs stages 2-4 on CPU with the quick CPU set and the build at
hand (no JIT, no sanitizer, no full suite) to prove the path and the JSON writer.
"""
import argparse
import datetime
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SANITIZER_TOOLS = ("memcheck", "racecheck", "initcheck", "synccheck")
START = time.time()


def remaining(budget):
    return budget - (time.time() - START)


def log(msg):
    print(f"[gpu_run {time.time() - START:5.0f}s] {msg}", flush=True)


def load_build_module():
    """ganloss_cuda/_build.py by path: csrc_hash without importing (and so building) the package."""
    spec = importlib.util.spec_from_file_location("_build", ROOT / "ganloss_cuda" / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def spawn(cmd, log_path, env=None):
    """Start cmd in its own process group, stdout + stderr to log_path."""
    out = open(log_path, "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env or child_env(), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc, log_path, timeout):
    """(return code or 'timeout', seconds waited, output tail); kills the group on timeout."""
    start = time.time()
    try:
        rc = proc.wait(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc = "timeout"
    tail = Path(log_path).read_text(errors="replace")[-3000:]
    return rc, round(time.time() - start, 1), tail


def parse_junit(path):
    """{"passed", "failed", "skipped", "failures": [test ids]} from a junit xml file."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            counts["failures"].append(test_id)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def pytest_cmd(junit, *args):
    return [sys.executable, "-m", "pytest", "tests", "-q", "-rfE", "-p", "no:cacheprovider",
            f"--junitxml={junit}", *args]


def pytest_result(proc, junit, log_path, timeout):
    rc, seconds, tail = finish(proc, log_path, timeout)
    result = {"rc": rc, "seconds": seconds}
    try:
        result.update(parse_junit(junit))
    except (OSError, ET.ParseError) as e:
        result.update(error=f"no junit report ({type(e).__name__}); output tail follows",
                      tail=tail)
    return result


def sanitizer_result(proc, log_path, timeout):
    rc, seconds, tail = finish(proc, log_path, timeout)
    summary = re.findall(r"(?:ERROR|RACECHECK) SUMMARY: .*", tail)
    errors = re.findall(r"(\d+) errors?", summary[-1]) if summary else []
    n = int(errors[0]) if errors else None
    return {"rc": rc, "seconds": seconds, "errors": n, "ok": rc == 0 and n == 0,
            "summary": summary[-1] if summary else None, "tail": None if rc == 0 else tail}


def find_sanitizer():
    """compute-sanitizer on PATH, else in the CUDA toolkit torch builds with; or None."""
    from torch.utils.cpp_extension import CUDA_HOME

    bundled = Path(CUDA_HOME or "/usr/local/cuda") / "bin" / "compute-sanitizer"
    return shutil.which("compute-sanitizer") or (str(bundled) if bundled.is_file() else None)


def device_facts(dry_run):
    import torch

    if dry_run:
        return {"device": "cpu", "torch": torch.__version__, "cuda": torch.version.cuda,
                "driver": None, "cc": None}
    props = torch.cuda.get_device_properties(0)
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        driver = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.split()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        driver = None
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "driver": driver, "cc": f"{props.major}.{props.minor}",
            "sm_count": props.multi_processor_count, "l2_bytes": props.L2_cache_size,
            "memory_bytes": props.total_memory}


def slug(device_name):
    """'NVIDIA H100 80GB HBM3' -> 'h100': the first word with a digit, lower case."""
    words = re.findall(r"[a-z0-9]+", device_name.lower().replace("nvidia", ""))
    return next((w for w in words if re.search(r"\d", w)), words[0] if words else "gpu")


def build_stage(report, dry_run, timeout):
    """Import (and so build) the extension in a child process: the timed build."""
    if not dry_run:
        os.environ.setdefault("GANLOSS_CUDA_JIT", "1")
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    log_path = Path(tempfile.gettempdir()) / "gpu_run_build.log"
    code = "import json, ganloss_cuda.info as i; print('FACTS ' + json.dumps(i.build_facts()))"
    proc = spawn([sys.executable, "-c", code], log_path)
    rc, seconds, tail = finish(proc, log_path, timeout)
    facts = next((json.loads(line[6:]) for line in tail.splitlines()
                  if line.startswith("FACTS ")), {})
    report["build"] = {"ok": rc == 0 and bool(facts.get("loaded")), "seconds": seconds,
                       "mode": "jit" if os.environ.get("GANLOSS_CUDA_JIT") == "1" else "setup.py",
                       "torch_cuda_arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST"),
                       "loaded": facts.get("loaded"), "load_error": facts.get("load_error"),
                       "info": facts.get("build"), "kernels": facts.get("kernels"),
                       "tail": None if rc == 0 else tail}


def aot_stage(report, timeout):
    """setup.py build of a temporary copy of the tree (pip wheel: builds, installs nothing)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            ".git", "build", "*.so", "__pycache__", "*.egg-info", "results"))
        log_path = Path(tmp) / "aot.log"
        proc = spawn([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                      "-w", str(Path(tmp) / "wheel"), str(src)], log_path)
        rc, seconds, tail = finish(proc, log_path, timeout)
        wheels = [p.name for p in (Path(tmp) / "wheel").glob("*.whl")]
    report["build_aot"] = {"ok": rc == 0 and bool(wheels), "rc": rc, "seconds": seconds,
                           "wheels": wheels, "tail": None if rc == 0 else tail}


def summary(report):
    """The short table printed last."""
    lines = [f"results file  {report.get('path')}",
             f"device        {report.get('device')}  cc {report.get('cc')}  torch "
             f"{report.get('torch')}  cuda {report.get('cuda')}  driver {report.get('driver')}",
             f"csrc          {report['csrc_sha256'][:12]}  commit {report.get('git_commit')}"]
    build = report.get("build", {})
    lines.append(f"build         {'ok' if build.get('ok') else 'FAILED'} ({build.get('mode')}, "
                 f"{build.get('seconds')} s) {build.get('load_error') or ''}".rstrip())
    checks = report.get("checks", {})
    lines.append(f"checks        {checks.get('passed')} passed, {checks.get('failed')} failed")
    for key in ("tests", "tests_all"):
        t = report.get(key)
        if t:
            lines.append(f"{key:13s} {t.get('passed')} passed, {t.get('failed')} failed, "
                         f"{t.get('skipped')} skipped (rc {t.get('rc')}, {t.get('seconds')} s)")
    for tool, r in report.get("sanitizer", {}).items():
        verdict = "ok" if r.get("ok") else "FAILED"
        lines.append(f"{tool:13s} {verdict}: {r.get('summary') or r.get('rc')}")
    kernels = ", ".join(
        f"{k['op']} {'pass' if k['passed'] else 'FAIL' if k['tested'] else 'untested'}"
        for k in report.get("kernels", []))
    lines.append(f"kernels       {kernels}")
    probe = report.get("bandwidth_probe") or {}
    lines.append(f"copy          {probe.get('gbps', 0):.0f} GB/s")
    ours = {(r["case"], r["dtype"], r["mode"]): r for r in report.get("benchmarks", [])
            if r["provider"] == "ganloss"}
    lines.append(f"{'case':26s} {'dtype':5s} {'mode':8s} {'ganloss_ms':>10s} {'floor_ms':>9s} "
                 f"{'GB/s':>7s} {'x ref':>6s} {'x comp':>6s}")
    for s in report.get("speedups", []):
        r = ours[(s["case"], s["dtype"], s["mode"])]
        ratio = [f"{s[f'vs_{p}']:6.2f}" if s[f"vs_{p}"] is not None
                 else ("noisy" if {"ganloss", p} & set(s["noisy"]) else "-").rjust(6)
                 for p in ("reference", "reference_compiled")]
        floor = "-" if r["floor_ms"] is None else f"{r['floor_ms']:.3f}"  # none on CPU
        lines.append(f"{s['case']:26s} {s['dtype']:5s} {s['mode']:8s} {r['median_ms']:10.3f} "
                     f"{floor:>9s} {r['achieved_gbps']:7.0f} {ratio[0]} {ratio[1]}")
    for stage, error in report.get("errors", {}).items():
        lines.append(f"ERROR {stage}: {error.strip().splitlines()[-1]}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="folder for the results file (default: $OUT, else "
                        "benchmarks/results; a temporary folder for --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="CPU rehearsal, quick CPU set")
    parser.add_argument("--aot", action="store_true", help="also try a setup.py build at the end")
    parser.add_argument("--budget", type=float, default=450, help="seconds for the whole run")
    args = parser.parse_args()
    budget, dry = args.budget, args.dry_run
    default_out = tempfile.mkdtemp(prefix="gpu_run_") if dry else ROOT / "benchmarks" / "results"
    out_dir = Path(args.out or os.environ.get("OUT") or default_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_run_work_"))

    report = {"csrc_sha256": load_build_module().csrc_hash(ROOT / "csrc"),
              "git_commit": os.environ.get("GIT_COMMIT"), "dry_run": dry,
              "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec="seconds"), "python": sys.version.split()[0], "errors": {}}

    def stage(name, fn):
        """Run one stage; record its traceback instead of stopping; rewrite the file."""
        log(f"{name} ...")
        try:
            fn()
        except Exception:
            report["errors"][name] = traceback.format_exc()[-3000:]
            log(f"{name} FAILED: {traceback.format_exc().strip().splitlines()[-1]}")
        report["wall_s"] = round(time.time() - START, 1)
        if "path" in report:
            Path(report["path"]).write_text(json.dumps(report, indent=1) + "\n")

    device = "cpu" if dry else "cuda"
    stage("device", lambda: report.update(device_facts(dry)))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    name = f"{slug(report.get('device') or 'unknown')}-{date}-{report['csrc_sha256'][:12]}.json"
    report["path"] = str(out_dir / name)
    stage("build", lambda: build_stage(report, dry, min(300, remaining(budget) - 120)))
    if not report.get("build", {}).get("ok"):
        os.environ["GANLOSS_CUDA_NO_JIT"] = "1"  # do not compile again in this process

    def checks():
        from ganloss_cuda.__main__ import kernel_results, run_checks

        results = run_checks(device, log=lambda s: s.startswith("FAIL") and log(s))
        failed = [r for r in results if r["failed"]]
        report["checks"] = {"passed": len(results) - len(failed), "failed": len(failed),
                            "failures": failed}
        report["kernels"] = kernel_results(results, device)

    stage("checks", checks)

    def tests_and_sanitizer():
        junit = work / "cuda.xml"
        procs = {"tests": spawn(pytest_cmd(junit, "-m", "cuda"), work / "cuda.log")}
        sanitizer = None if dry else find_sanitizer()
        env = dict(child_env(), PYTORCH_NO_CUDA_MEMORY_CACHING="1")  # the pool hides overruns
        for tool in SANITIZER_TOOLS if sanitizer else ():
            procs[tool] = spawn([sanitizer, "--tool", tool, "--error-exitcode", "99",
                                 sys.executable, "tools/sanitize_case.py"],
                                work / f"{tool}.log", env)
        timeout = min(240, remaining(budget) - 200)
        deadline = time.time() + timeout
        report["tests"] = pytest_result(procs.pop("tests"), junit, work / "cuda.log", timeout)
        report["sanitizer"] = {
            tool: sanitizer_result(p, work / f"{tool}.log", deadline - time.time())
            for tool, p in procs.items()}
        if not sanitizer:
            report["sanitizer_skipped"] = "dry run" if dry else "compute-sanitizer not found"

    stage("tests_and_sanitizer", tests_and_sanitizer)

    def benchmarks():
        from ganloss_cuda import benchmark

        report["bandwidth_probe"] = benchmark.bandwidth_probe(device)
        report["benchmarks"], report["skipped_cases"] = [], []
        gbps = report["bandwidth_probe"]["gbps"]
        # Round robin over the suites (each lists its most important cases first), so a short
        # budget still measures every family.
        lists = [[(suite, c) for c in suite.cases_for(device, quick=dry)]
                 for suite in benchmark.SUITES]
        ordered = [pair for rank in itertools.zip_longest(*lists) for pair in rank if pair]
        for suite, case in ordered:
            if remaining(budget) < 90:
                report["skipped_cases"].append(f"{case.group('fwd_bwd')}: out of time")
                continue
            try:
                report["benchmarks"] += benchmark.run_case(suite, case, device, gbps,
                                                           quick=dry, log=log)
            except Exception:
                name = f"benchmark {case.op} {case.name} {case.dtype_name}"
                report["errors"][name] = traceback.format_exc()[-3000:]
        report["speedups"] = benchmark.speedups(report["benchmarks"])

    stage("benchmarks", benchmarks)

    def tests_all():
        junit = work / "all.xml"
        proc = spawn(pytest_cmd(junit), work / "all.log")
        report["tests_all"] = pytest_result(proc, junit, work / "all.log", remaining(budget) - 15)

    if not dry and remaining(budget) > 60:
        stage("tests_all", tests_all)
    if args.aot and remaining(budget) > 60:
        stage("build_aot", lambda: aot_stage(report, remaining(budget) - 10))
    print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

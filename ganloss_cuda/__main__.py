"""`python -m ganloss_cuda`: build facts, then for every loss family (benchmark.SUITES) its
self-checks against the float64 reference on every device at hand (PASS/FAIL per check; exit
status 1 on any failure), then each device's benchmark set of every family (ganloss_cuda.benchmark:
providers interleaved, median and IQR, peak memory) with ganloss's speedups, or "noisy" where
the machine was too busy for one. Rule: knows no family; everything family-specific comes from
the suites.

    python -m ganloss_cuda            # checks + the device's benchmark set (CPU: about a minute)
    python -m ganloss_cuda --quick    # checks + the smallest cases, few repeats
    python -m ganloss_cuda --info     # build facts only
    python -m ganloss_cuda --json rows.json
"""
import argparse
import json
import sys

import torch

from . import benchmark, info


def run_checks(device: str, log=print) -> list:
    """Every suite's self-checks on device (benchmark.run_self_checks), one PASS/FAIL line each."""
    return [r for suite in benchmark.SUITES for r in benchmark.run_self_checks(suite, device, log)]


def kernel_results(results: list, device: str) -> list:
    """Per op: {op, tested, passed}; tested when the op has a kernel on device and checks ran
    there, passed when no check failed at a stage that runs the op."""
    ran = [r for r in results if r["device"] == device]
    stages = {suite.name: suite.check_stages for suite in benchmark.SUITES}
    out = []
    for op, devices in info.build_facts()["kernels"].items():
        tested = bool(ran) and device in devices
        failed = any(s in r["failed"] for r in ran for s in stages[r["family"]].get(op, ()))
        out.append({"op": op, "tested": tested, "passed": tested and not failed})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ganloss_cuda",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--info", action="store_true", help="print the build facts only")
    parser.add_argument("--quick", action="store_true", help="smallest cases, few repeats")
    parser.add_argument("--json", metavar="PATH", help="write checks and benchmark rows here")
    args = parser.parse_args(argv)

    facts = info.build_facts()
    info.print_facts(facts)
    if args.info:
        return 0
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("\n== checks: ganloss_cuda.functional vs the float64 reference ==")
    checks = [r for d in devices for r in run_checks(d)]
    failed = [r for r in checks if r["failed"]]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    if failed:
        return 1
    report = {"build": facts, "checks": checks, "bandwidth_probe": [], "benchmarks": [],
              "speedups": []}
    for device in devices:
        for note in dict.fromkeys(filter(None, (benchmark.provider_note(suite, device)
                                                for suite in benchmark.SUITES))):
            print(f"WARNING: {note}")
        print(f"\n== benchmarks on {device} ({'quick' if args.quick else 'full'} set) ==")
        result = benchmark.run_set(benchmark.SUITES, device, quick=args.quick,
                                   log=lambda s: print(s, file=sys.stderr, flush=True))
        print(f"copy bandwidth {result['bandwidth_probe']['gbps']:.1f} GB/s (docs/performance.md)")
        print(benchmark.format_table(result["benchmarks"], result["speedups"]))
        report["bandwidth_probe"].append(result["bandwidth_probe"])
        report["benchmarks"] += result["benchmarks"]
        report["speedups"] += result["speedups"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

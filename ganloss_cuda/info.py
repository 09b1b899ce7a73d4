"""`python -m ganloss_cuda.info`: how the extension was built, which kernels are loaded, and what
ever verified the CUDA kernels: the SIMT emulation tier (kernel_status.json, written by
tests/test_simt.py with GANLOSS_SIMT_RECORD=1) and GPU runs (benchmarks/results/*.json, written
by tools/gpu_run.py).

Layer rule: imports torch, ``_build``, ``_ext`` and ``ops`` (for the op names) only.
"""
import json
import platform
from pathlib import Path

import torch

from . import _build, _ext, ops


STATUS_FILE = Path(__file__).resolve().parent / "kernel_status.json"


def cuda_verification(csrc_sha256) -> dict:
    """Per CUDA op: "emulation" (did the SIMT tier pass it at this csrc hash) and "gpu" (did a
    committed GPU results file ever record it as passed, and at which csrc)."""
    status = json.loads(STATUS_FILE.read_text()) if STATUS_FILE.is_file() else {}
    emulation = status.get("emulation", {})
    csrc = _build.find_csrc()
    results_dir = csrc.parent / "benchmarks" / "results" if csrc else None
    gpu = {}
    for path in sorted(results_dir.glob("*.json")) if results_dir and results_dir.is_dir() else ():
        report = json.loads(path.read_text())
        for k in report.get("kernels") or []:
            if k.get("passed"):
                gpu[k["op"]] = (f"passed on {report.get('device')} at csrc "
                                f"{str(report.get('csrc_sha256'))[:12]} ({path.name})")
    out = {}
    for op in ops.OPS:
        e = emulation.get("ops", {}).get(op)
        if e is None:
            verdict = "never run"
        elif not e["passed"]:
            verdict = f"FAILED at csrc {emulation['csrc_hash'][:12]}"
        elif emulation["csrc_hash"] == csrc_sha256:
            verdict = f"passed at this csrc ({emulation['date']})"
        else:
            verdict = f"passed at an older csrc {emulation['csrc_hash'][:12]} ({emulation['date']})"
        out[op] = {"emulation": verdict, "gpu": gpu.get(op, "never")}
    return out


def build_facts() -> dict:
    csrc = _build.find_csrc()
    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "nvcc": _build.nvcc_path(),
        "csrc": str(csrc) if csrc else None,
        "csrc_sha256": _build.csrc_hash(csrc) if csrc else None,
        "loaded": _ext.available(),
        "load_error": _ext.load_error,
        "build": dict(_ext.build_info),
        "jit_cache": str(_ext.cache_root()),
    }
    facts["kernels"] = {op: [d for d in ("cpu", "cuda") if _ext.has_kernel(op, d)]
                        for op in ops.OPS}
    facts["cuda_verified"] = cuda_verification(facts["csrc_sha256"])
    return facts


def print_facts(facts: dict):
    for key, value in facts.items():
        if key == "cuda_verified":
            for op, v in value.items():
                print(f"{'cuda_verified':12s} {op}: emulation {v['emulation']}; GPU {v['gpu']}")
        else:
            print(f"{key:12s} {value}")


def main():
    print_facts(build_facts())


if __name__ == "__main__":
    main()

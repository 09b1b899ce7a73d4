"""`python -m ganloss_cuda.info`: how the extension was built and which kernels are loaded.

Layer rule: imports torch, ``_build``, ``_ext`` and ``ops`` (for the op names) only.
"""
import platform

import torch

from . import _build, _ext, ops


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
    return facts


def main():
    for key, value in build_facts().items():
        print(f"{key:12s} {value}")


if __name__ == "__main__":
    main()

"""Ahead-of-time build of ganloss_cuda._C: CPU kernels always, CUDA kernels when torch has CUDA
and nvcc is found (no GPU needed). Install with `pip install --no-build-isolation .` so the build
uses the torch that is installed. Environment: TORCH_CUDA_ARCH_LIST (unset: the visible GPUs, or
with none every arch of nvcc from sm_80 up plus PTX), MAX_JOBS, DEBUG=1,
GANLOSS_CUDA_CPU_ONLY=1, GANLOSS_CUDA_FORCE_CUDA=1, GANLOSS_CUDA_NO_BUILD=1 (Python only; the
package then compiles csrc/ on first import)."""
import importlib.util
import json
import os
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("_build", ROOT / "ganloss_cuda" / "_build.py")
_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(_build)

ext_modules, cmdclass = [], {}
if os.environ.get("GANLOSS_CUDA_NO_BUILD") != "1":
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    with_cuda = _build.build_with_cuda() or os.environ.get("GANLOSS_CUDA_FORCE_CUDA") == "1"
    # With no GPU visible and TORCH_CUDA_ARCH_LIST unset, these name the archs (torch would fail).
    nvcc_flags = _build.nvcc_flags() if with_cuda else []
    csrc = ROOT / "csrc"
    (ROOT / "ganloss_cuda" / "_build_info.json").write_text(json.dumps({
        "csrc_sha256": _build.csrc_hash(csrc), "with_cuda": with_cuda, "torch": torch.__version__,
        "cuda": torch.version.cuda, "torch_cuda_arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST"),
        "nvcc_flags": nvcc_flags,
    }, indent=1) + "\n")
    Extension = CUDAExtension if with_cuda else CppExtension
    ext_modules = [Extension(
        "ganloss_cuda._C",
        sources=[os.path.relpath(s, ROOT) for s in _build.sources(csrc, with_cuda)],
        extra_compile_args={"cxx": _build.cxx_flags(), "nvcc": nvcc_flags},
    )]
    cmdclass = {"build_ext": BuildExtension}

setup(
    packages=find_packages(include=["ganloss_cuda", "ganloss_cuda.*"]),
    package_data={"ganloss_cuda": ["_build_info.json", "kernel_status.json"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)

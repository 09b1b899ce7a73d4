"""What the extension is built from and how: shared by setup.py (ahead of time) and _ext.py (JIT).

Imports nothing from the package, so setup.py can load this file on its own.
"""
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def find_csrc():
    """The csrc/ tree beside the package (source checkout, editable install), or None."""
    for candidate in (PACKAGE_DIR.parent / "csrc", PACKAGE_DIR / "csrc"):
        if (candidate / "ganloss.cpp").is_file():
            return candidate
    return None


def csrc_hash(root) -> str:
    """sha256 over sorted relative POSIX paths of every regular file under root, each fed as
    path + NUL + sha256(bytes): the stamp of GPU results files (docs/gpu-results.md)."""
    root = Path(root)
    paths = []
    for d, _, files in os.walk(root):
        for f in files:
            p = Path(d) / f
            if p.is_file() and not p.is_symlink():
                paths.append(p.relative_to(root).as_posix())
    h = hashlib.sha256()
    for rel in sorted(paths):
        h.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def nvcc_path():
    """nvcc of the CUDA toolkit torch.utils.cpp_extension would use, or None."""
    from torch.utils.cpp_extension import CUDA_HOME

    for home in (CUDA_HOME, os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def build_with_cuda() -> bool:
    """CUDA kernels are built when torch has CUDA and nvcc is found (no GPU needed).
    GANLOSS_CUDA_CPU_ONLY=1 turns them off."""
    import torch

    if os.environ.get("GANLOSS_CUDA_CPU_ONLY") == "1":
        return False
    return torch.version.cuda is not None and nvcc_path() is not None


def sources(csrc, with_cuda):
    """The files to compile, found by globbing so that a new loss family needs no edit here: the
    schema file ganloss.cpp, the Python module python_calls.cpp, plan/*.cpp and cpu/*.cpp, plus,
    when with_cuda, the kernels cuda/*.cu and their torch-facing host files cuda/*.cpp. The JIT
    build names each object file after its source's base name (x.o, x.cuda.o for x.cu), so base
    names must be unique."""
    csrc = Path(csrc)
    files = [csrc / "ganloss.cpp", csrc / "python_calls.cpp", *sorted(csrc.glob("plan/*.cpp")),
             *sorted(csrc.glob("cpu/*.cpp"))]
    if with_cuda:
        files += sorted(csrc.glob("cuda/*.cu")) + sorted(csrc.glob("cuda/*.cpp"))
    objects = [f.stem + (".cuda.o" if f.suffix == ".cu" else ".o") for f in files]
    clashes = sorted({o for o in objects if objects.count(o) > 1})
    if clashes:
        raise RuntimeError(f"csrc sources with the same base name (one object file each): {clashes}")
    return [str(f) for f in files]


def cxx_flags():
    """Flags for the C++ compiler (DEBUG=1: unoptimised, with symbols)."""
    flags = ["-O3", "-fno-math-errno", "-fopenmp-simd"]
    if os.environ.get("DEBUG") == "1":
        flags = ["-O0", "-g"]
    return flags


def nvcc_archs(list_gpu_arch_output: str) -> list:
    """The plain compute capabilities (80 for compute_80) in the output of `nvcc --list-gpu-arch`,
    ascending; family and arch-specific variants such as compute_90a are left out."""
    return sorted({int(n) for n in re.findall(r"^compute_(\d+)$", list_gpu_arch_output, re.M)})


def default_arch_flags(archs) -> list:
    """-gencode flags for every arch in `archs` from sm_80 up, plus PTX for the newest of them
    (which the driver compiles for GPUs newer than the toolkit)."""
    chosen = [a for a in archs if a >= 80]
    if not chosen:
        raise RuntimeError(f"nvcc supports no arch from sm_80 up (it lists {archs}): "
                           "set TORCH_CUDA_ARCH_LIST or use a newer CUDA toolkit")
    newest = chosen[-1]
    return ([f"-gencode=arch=compute_{a},code=sm_{a}" for a in chosen]
            + [f"-gencode=arch=compute_{newest},code=compute_{newest}"])


def cuda_arch_flags() -> list:
    """Arch flags for nvcc when torch's own rule cannot apply: with TORCH_CUDA_ARCH_LIST unset
    torch builds for the visible GPUs, and with none visible (a build container) it fails with
    IndexError. Then: default_arch_flags of what the installed nvcc supports. Torch adds no arch
    flags of its own once these are given; [] leaves the choice to torch."""
    import torch

    if os.environ.get("TORCH_CUDA_ARCH_LIST") or torch.cuda.device_count() > 0:
        return []
    listing = subprocess.run([nvcc_path(), "--list-gpu-arch"], capture_output=True, text=True,
                             check=True).stdout
    return default_arch_flags(nvcc_archs(listing))


def nvcc_flags():
    """Flags for nvcc; architectures from TORCH_CUDA_ARCH_LIST, else the visible GPUs (torch's
    rule), else cuda_arch_flags(). Call only when building with CUDA (runs nvcc)."""
    flags = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
    if os.environ.get("DEBUG") == "1":
        flags = ["-O0", "-g", "-G"]
    return flags + cuda_arch_flags()

"""Loads the compiled ops, once, at import.

Order: the setup.py build (``ganloss_cuda._C``) when it was built from the csrc/ tree at hand,
else a JIT build of csrc/ through ``torch.utils.cpp_extension.load`` into a cache keyed by the
content hash of csrc/ (a build that exists is loaded without invoking the compiler). If neither
works, ``load_error`` keeps the reason and the public API falls back to ``reference`` with one
warning. Environment:

  GANLOSS_CUDA_DISABLE=1   load nothing (use the reference); for tests and bisecting
  GANLOSS_CUDA_NO_JIT=1    never compile; use the setup.py build or fall back
  GANLOSS_CUDA_JIT=1       ignore the setup.py build and use (or make) a JIT build
  GANLOSS_CUDA_STRICT=1    raise at import instead of falling back
  GANLOSS_CUDA_CACHE=DIR   JIT cache root (default: $TORCH_EXTENSIONS_DIR or ~/.cache/ganloss_cuda)
  GANLOSS_CUDA_CPU_ONLY=1  build without CUDA kernels even when nvcc is found
"""
import importlib
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import _build

load_error = None  # why no extension is loaded (str), or None
build_info = {}    # how the loaded extension was built; see info.py


def _env(name):
    return os.environ.get(name) == "1"


def _say(msg):
    print(f"ganloss_cuda: {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    root = os.environ.get("GANLOSS_CUDA_CACHE") or os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(root) if root else Path.home() / ".cache" / "ganloss_cuda"


def _jit_dir(digest: str, with_cuda: bool) -> Path:
    flavour = f"cu{torch.version.cuda}" if with_cuda else "cpu"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_torch{torch.__version__}_{flavour}"
    return cache_root() / tag.replace("+", "_") / digest[:16]


def _load_prebuilt(csrc, digest):
    info_file = _build.PACKAGE_DIR / "_build_info.json"
    try:
        importlib.import_module("ganloss_cuda._C")
    except ImportError as e:
        return f"no setup.py build ({e})"
    built = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if csrc is not None and built.get("csrc_sha256") != digest:
        # The stale build has registered its ops already: a JIT build could not replace them.
        raise _StaleBuild(
            f"ganloss_cuda._C was built from csrc {built.get('csrc_sha256', '?')[:12]} but the tree "
            f"is {digest[:12]}: rebuild it (pip install --no-build-isolation -e .) or delete it")
    build_info.update(built, source="setup.py")
    return None


class _StaleBuild(Exception):
    pass


def _load_jit(csrc, digest):
    from torch.utils import cpp_extension

    with_cuda = _build.build_with_cuda()
    build_dir = _jit_dir(digest, with_cuda)
    name = f"ganloss_{digest[:16]}"
    library = build_dir / f"{name}.so"
    seconds = 0.0
    if library.is_file():
        torch.ops.load_library(str(library))
    else:
        if _env("GANLOSS_CUDA_NO_JIT"):
            return "GANLOSS_CUDA_NO_JIT=1 forbids compiling and no JIT build is cached"
        build_dir.mkdir(parents=True, exist_ok=True)
        kind = "CPU + CUDA" if with_cuda else "CPU"
        _say(f"compiling {kind} kernels (csrc {digest[:12]}) into {build_dir}; "
             "the first build takes a minute or two ...")
        start = time.time()
        cpp_extension.load(
            name=name, sources=_build.sources(csrc, with_cuda), build_directory=str(build_dir),
            extra_cflags=_build.cxx_flags(), extra_cuda_cflags=_build.nvcc_flags(),
            with_cuda=with_cuda, is_python_module=False, verbose=False)
        seconds = time.time() - start
        _say(f"built in {seconds:.0f} s")
    build_info.update(source="jit", path=str(library), csrc_sha256=digest, with_cuda=with_cuda,
                      build_seconds=round(seconds, 1),
                      torch_cuda_arch_list=os.environ.get("TORCH_CUDA_ARCH_LIST"))
    return None


def _load():
    if _env("GANLOSS_CUDA_DISABLE"):
        return "disabled by GANLOSS_CUDA_DISABLE=1"
    csrc = _build.find_csrc()
    digest = _build.csrc_hash(csrc) if csrc is not None else None
    if _env("GANLOSS_CUDA_JIT"):
        reason = "setup.py build ignored (GANLOSS_CUDA_JIT=1)"
    else:
        try:
            reason = _load_prebuilt(csrc, digest)
        except _StaleBuild as e:
            return str(e)
        if reason is None:
            return None
    if csrc is None:
        return f"{reason}, and no csrc/ tree to compile"
    try:
        jit_error = _load_jit(csrc, digest)
    except Exception as e:  # compiler missing, build error, ...
        jit_error = f"JIT build failed: {type(e).__name__}: {e}"
    return None if jit_error is None else f"{reason}; {jit_error}"


load_error = _load()
if load_error is not None and _env("GANLOSS_CUDA_STRICT"):
    raise RuntimeError(f"ganloss_cuda: no compiled extension ({load_error}); GANLOSS_CUDA_STRICT=1")


def available() -> bool:
    """True when the compiled ops are loaded."""
    return load_error is None


OPS = ("feature_loss", "feature_loss_backward", "feature_loss_scale_grads_")

# Which ops have kernels for which device type, read once here so that the lookup in
# functional.py is a plain dict access that torch.compile traces without a graph break.
_kernels = {
    (op, device): available() and torch._C._dispatch_has_kernel_for_dispatch_key(
        f"ganloss::{op}", device.upper())
    for op in OPS for device in ("cpu", "cuda")
}


def has_kernel(op: str, device_type: str) -> bool:
    """Whether ganloss::<op> has a kernel for 'cpu' or 'cuda' tensors."""
    return _kernels.get((op, device_type), False)

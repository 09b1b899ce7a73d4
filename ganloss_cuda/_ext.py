"""Loads the compiled ops, once, at import, and decides per call whether a public function runs
them (``use_extension``) or falls back to the reference with one ``FallbackWarning``.

Layer rule: imports torch and ``_build`` only; knows no op or family by name.

Order: the setup.py build (``ganloss_cuda._C``) when it was built from the csrc/ tree at hand,
else a JIT build of csrc/ through ``torch.utils.cpp_extension.load`` into a cache keyed by the
content hash of csrc/. A cache entry is a directory built under a temporary name and renamed into
place, with a manifest (the library's size and sha256) written last; an entry that matches its
manifest is loaded without invoking the compiler, any other is rebuilt. If neither
works, ``load_error`` keeps the reason and the public API falls back to ``reference`` with one
warning. Environment:

  GANLOSS_CUDA_DISABLE=1   load nothing (use the reference); for tests and bisecting
  GANLOSS_CUDA_NO_JIT=1    never compile; use the setup.py build or fall back
  GANLOSS_CUDA_JIT=1       ignore the setup.py build and use (or make) a JIT build
  GANLOSS_CUDA_STRICT=1    raise at import instead of falling back
  GANLOSS_CUDA_CACHE=DIR   JIT cache root (default: $TORCH_EXTENSIONS_DIR or ~/.cache/ganloss_cuda)
  GANLOSS_CUDA_CPU_ONLY=1  build without CUDA kernels even when nvcc is found
"""
import ctypes
import hashlib
import importlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from . import _build

load_error = None  # why no extension is loaded (str), or None
build_info = {}    # how the loaded extension was built; see info.py
module = None      # the extension's Python module (csrc/python_calls.cpp): eager entry points


def _env(name):
    return os.environ.get(name) == "1"


def _say(msg):
    print(f"ganloss_cuda: {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    root = os.environ.get("GANLOSS_CUDA_CACHE") or os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(root) if root else Path.home() / ".cache" / "ganloss_cuda"


def _jit_dir(digest: str, with_cuda: bool) -> Path:
    """The cache entry for this csrc/ tree, Python, torch and flavour (a directory)."""
    flavour = f"cu{torch.version.cuda}" if with_cuda else "cpu"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_torch{torch.__version__}_{flavour}"
    return cache_root() / tag.replace("+", "_") / digest[:16]


def _load_prebuilt(csrc, digest):
    """Imports the setup.py build; returns why there is none (str), or None. Raises _StaleBuild
    when it was built from another csrc/ tree."""
    global module
    info_file = _build.PACKAGE_DIR / "_build_info.json"
    try:
        prebuilt = importlib.import_module("ganloss_cuda._C")
    except ImportError as e:
        return f"no setup.py build ({e})"
    built = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if csrc is not None and built.get("csrc_sha256") != digest:
        # The stale build has registered its ops already: a JIT build could not replace them.
        raise _StaleBuild(
            f"ganloss_cuda._C was built from csrc {built.get('csrc_sha256', '?')[:12]} but the tree "
            f"is {digest[:12]}: rebuild it (pip install --no-build-isolation -e .) or delete it")
    build_info.update(built, source="setup.py")
    module = prebuilt
    return None


class _StaleBuild(Exception):
    pass


MANIFEST = "manifest.json"  # written last into a cache entry: the library's size and sha256


def _sha256(path: Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry_problem(entry: Path):
    """Why the cache entry must not be loaded (str), or None when its library has the size and
    sha256 that its manifest records."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        library = entry / manifest["library"]
        size = library.stat().st_size
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"no valid {MANIFEST} or library ({type(e).__name__}: {e})"
    if size != manifest.get("size"):
        return f"{library.name} has {size} bytes, {MANIFEST} says {manifest.get('size')}"
    if _sha256(library) != manifest.get("sha256"):
        return f"{library.name} does not match the sha256 in {MANIFEST}"
    return None


def _build_owner_alive(build_dir: Path, prefix: str) -> bool:
    """Whether the process named in a temporary build directory (prefix + pid + '-' + random)
    still runs."""
    try:
        os.kill(int(build_dir.name[len(prefix):].split("-")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True  # not ours to judge, or alive under another user
    return True


def _build_failure_cause(log: str) -> str:
    """The line of a build log that says what went wrong: the first compiler error or missing
    program, else the log's first line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()] or ["(empty build log)"]
    cause = next((line for line in lines
                  if re.search(r"error:|not found|no such file", line, re.I)), lines[0])
    return cause[:300]


class _BuildFailed(Exception):
    """A JIT build failed; the message is the one-line cause and names the log file."""


def _build_entry(csrc, entry: Path, name: str, with_cuda: bool):
    """Compiles csrc/ into `entry` atomically: in a fresh directory of this process beside it (so
    no lock or half-written file of another build is ever seen), manifest written last, then
    renamed into place. torch loads the library as it builds it. Temporary directories of dead
    builds on this host are removed first. Raises _BuildFailed with a one-line cause; the full
    log goes to <entry>.build.log."""
    from torch.utils import cpp_extension

    entry.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{entry.name}.build-{socket.gethostname()}-"
    for stale in entry.parent.glob(prefix + "*"):
        if not _build_owner_alive(stale, prefix):
            shutil.rmtree(stale, ignore_errors=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=entry.parent))
    nvcc_flags = _build.nvcc_flags() if with_cuda else []
    try:
        try:
            cpp_extension.load(
                name=name, sources=_build.sources(csrc, with_cuda), build_directory=str(build_dir),
                extra_cflags=_build.cxx_flags(), extra_cuda_cflags=nvcc_flags,
                with_cuda=with_cuda, is_python_module=False, verbose=False)
        except Exception as e:
            log = entry.parent / f"{entry.name}.build.log"
            log.write_text(f"{type(e).__name__}: {e}\n")
            raise _BuildFailed(f"{_build_failure_cause(str(e))} (full build log: {log})") from None
        library = build_dir / f"{name}.so"
        (build_dir / MANIFEST).write_text(json.dumps({
            "library": library.name, "size": library.stat().st_size, "sha256": _sha256(library),
            "with_cuda": with_cuda, "nvcc_flags": nvcc_flags,
            "torch_cuda_arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST")}, indent=1) + "\n")
        try:
            os.rename(build_dir, entry)
        except OSError:
            if _entry_problem(entry) is not None:  # else another process has just put it there
                raise
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def _module_of_library(library: Path):
    """The Python module of a loaded JIT library: the one its PyInit__C makes, called through
    ctypes (the library is loaded as a plain one, not imported)."""
    init = ctypes.PyDLL(str(library)).PyInit__C
    init.restype = ctypes.py_object
    return init()


def _load_jit(csrc, digest):
    """Loads the cache entry for csrc/ when it is valid, else (re)builds it; returns why nothing
    is loaded (str), or None."""
    global module
    with_cuda = _build.build_with_cuda()
    entry = _jit_dir(digest, with_cuda)
    name = f"ganloss_{digest[:16]}"
    library = entry / f"{name}.so"
    seconds = 0.0
    cached = entry.exists()
    problem = _entry_problem(entry) if cached else None
    if cached and problem is None:
        torch.ops.load_library(str(library))
    elif _env("GANLOSS_CUDA_NO_JIT"):
        return ("GANLOSS_CUDA_NO_JIT=1 forbids compiling and no JIT build is cached"
                + (f" (the cached one at {entry} is invalid: {problem})" if problem else ""))
    else:
        if problem is not None:
            _say(f"discarding the cached build {entry}: {problem}")
            shutil.rmtree(entry, ignore_errors=True)
        kind = "CPU + CUDA" if with_cuda else "CPU"
        _say(f"compiling {kind} kernels (csrc {digest[:12]}) into {entry}; "
             "the first build takes a minute or two ...")
        start = time.time()
        try:
            _build_entry(csrc, entry, name, with_cuda)
        except _BuildFailed as e:
            _say(f"build failed: {e}")
            return f"JIT build failed: {e}"
        seconds = time.time() - start
        _say(f"built in {seconds:.0f} s")
    module = _module_of_library(library)
    manifest = json.loads((entry / MANIFEST).read_text())
    build_info.update(source="jit", path=str(library), csrc_sha256=digest,
                      with_cuda=manifest["with_cuda"], build_seconds=round(seconds, 1),
                      nvcc_flags=manifest["nvcc_flags"],
                      torch_cuda_arch_list=manifest["torch_cuda_arch_list"])
    return None


def _load():
    """Loads the setup.py build or the JIT build; returns why neither is loaded (str), or None."""
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
    except Exception as e:  # unwritable cache, unloadable library, ...
        jit_error = f"JIT build failed: {type(e).__name__}: {e}"
    return None if jit_error is None else f"{jit_error}; {reason}"  # the cause first


load_error = _load()
if load_error is not None and _env("GANLOSS_CUDA_STRICT"):
    raise RuntimeError(f"ganloss_cuda: no compiled extension ({load_error}); GANLOSS_CUDA_STRICT=1")


def available() -> bool:
    """True when the compiled ops are loaded."""
    return load_error is None


# Which ganloss ops have kernels for which device type, read once here from the dispatcher (every
# op the library registered, of every family) so that the lookup in the public functions is a
# plain dict access that torch.compile traces without a graph break.
_kernels = {
    (name.split("::", 1)[1], device): torch._C._dispatch_has_kernel_for_dispatch_key(
        name, device.upper())
    for name in (torch._C._dispatch_get_all_op_names() if available() else ())
    if name.startswith("ganloss::") for device in ("cpu", "cuda")
}


def has_kernel(op: str, device_type: str) -> bool:
    """Whether ganloss::<op> has a kernel for 'cpu' or 'cuda' tensors."""
    return _kernels.get((op, device_type), False)


class FallbackWarning(UserWarning):
    """The compiled ops are not used; results come from ganloss_cuda.reference."""


_warned = set()


def use_extension(op: str, device: torch.device) -> bool:
    """Whether a public function runs ganloss::<op> on `device`; when not, it runs the reference,
    and the first fallback for each reason warns once (FallbackWarning)."""
    # Meta tensors go to the fake kernels that ops/ registers for every loaded build.
    if has_kernel(op, device.type) or (device.type == "meta" and available()):
        return True
    reason = load_error or f"the extension was built without {device.type.upper()} kernels"
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"ganloss_cuda: using the pure-torch reference ({reason}); "
                      "`python -m ganloss_cuda.info` shows the build", FallbackWarning, stacklevel=3)
    return False

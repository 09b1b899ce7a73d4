"""Loader checks for the JIT cache: entries are written atomically and validated before they are
loaded (a truncated or corrupt library is rebuilt, never loaded), a lock or build directory left
by a killed build neither hangs the import nor stays behind, and a failed build gives a one-line
cause and names the file with the full log.

Everything that imports ganloss_cuda runs in a subprocess with its own GANLOSS_CUDA_CACHE, so this
module never triggers a build by importing the package. One JIT build (the `built_cache` fixture)
is copied into the cache of each test that needs a built entry. A missing compiler is simulated
with CXX naming a program that does not exist (torch.utils.cpp_extension compiles with $CXX).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NO_COMPILER = {"CXX": "/nonexistent/c++"}

LOAD_SCRIPT = """
    import json, warnings
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import ganloss_cuda
        from ganloss_cuda import _ext
        loss = ganloss_cuda.feature_loss(torch.ones(2, 3), torch.zeros(2, 3))
        assert float(loss) == 1.0
    fallback = [str(w.message) for w in caught
                if issubclass(w.category, ganloss_cuda.FallbackWarning)]
    print(json.dumps({"load_error": _ext.load_error, "build_info": _ext.build_info,
                      "fallback": fallback}))
"""


@pytest.fixture(scope="module", autouse=True)
def _extension_loaded():
    """Overrides the conftest fixture that fails when the pytest process has no extension loaded:
    these tests load the extension in their own subprocesses."""


def _env(cache, **overrides):
    """os.environ without GANLOSS_CUDA_* settings, with a JIT build in `cache`, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANLOSS_CUDA_")}
    env.update(GANLOSS_CUDA_JIT="1", GANLOSS_CUDA_CACHE=str(cache))
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def _python(code, env, timeout):
    """Runs python -c code in the repo root; returns (the process, the last JSON it printed)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in the output:\n{proc.stdout}"
    return proc, json.loads(lines[-1])


def _count(pattern, text):
    """How many lines of text match pattern."""
    return len(re.findall(pattern, text, flags=re.M))


@pytest.fixture(scope="module")
def entry_path():
    """Where the cache entry for csrc/ lies, relative to the cache root (the loader's own rule)."""
    code = """
        from ganloss_cuda import _build, _ext
        csrc = _build.find_csrc()
        entry = _ext._jit_dir(_build.csrc_hash(csrc), _build.build_with_cuda())
        print('{"entry": "%s"}' % entry.relative_to(_ext.cache_root()))
    """
    _, out = _python(code, _env("/nonexistent-cache", GANLOSS_CUDA_DISABLE=1), timeout=120)
    return Path(out["entry"])


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory, entry_path):
    """A cache whose entry was first planted as the old loader's truncated library (4 KB of an ELF
    file, no manifest), then rebuilt by the import: (cache root, that import's process)."""
    cache = tmp_path_factory.mktemp("built_cache")
    entry = cache / entry_path
    entry.mkdir(parents=True)
    (entry / f"ganloss_{entry.name}.so").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(4089))
    proc, out = _python(LOAD_SCRIPT, _env(cache, GANLOSS_CUDA_STRICT=1), timeout=1800)
    assert out["build_info"].get("source") == "jit", out
    return cache, proc


def _copy(built_cache, tmp_path):
    """A copy of the built cache in this test's tmp_path (its root)."""
    cache = tmp_path / "cache"
    shutil.copytree(built_cache[0], cache)
    return cache


def test_bad_entry_is_rebuilt_with_one_message_then_loaded(built_cache, entry_path, tmp_path):
    _, proc = built_cache
    assert _count(r"^ganloss_cuda: discarding the cached build ", proc.stderr) == 1, proc.stderr
    assert _count(r"^ganloss_cuda: compiling ", proc.stderr) == 1, proc.stderr
    assert _count(r"^ganloss_cuda: built in \d+ s$", proc.stderr) == 1, proc.stderr

    # The rebuilt entry loads as it is, without a compiler and without a word.
    cache = _copy(built_cache, tmp_path)
    proc, out = _python(LOAD_SCRIPT, _env(cache, GANLOSS_CUDA_STRICT=1, **NO_COMPILER), timeout=300)
    assert out["build_info"]["source"] == "jit" and out["build_info"]["build_seconds"] == 0
    assert Path(out["build_info"]["path"]).parent == cache / entry_path
    assert "ganloss_cuda:" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in (cache / entry_path).parent.iterdir()) == [entry_path.name]


@pytest.mark.parametrize("damage", ["4 KB", "half", "one byte flipped", "no manifest"])
def test_damaged_entry_is_never_loaded(built_cache, entry_path, tmp_path, damage):
    """A truncated library used to crash the import with SIGBUS, every time; now the entry is
    discarded with one message (the rebuild fails here, for want of a compiler)."""
    cache = _copy(built_cache, tmp_path)
    entry = cache / entry_path
    library = entry / f"ganloss_{entry.name}.so"
    data = library.read_bytes()
    if damage == "4 KB":
        library.write_bytes(data[:4096])
    elif damage == "half":
        library.write_bytes(data[:len(data) // 2])
    elif damage == "one byte flipped":
        library.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    else:
        (entry / "manifest.json").unlink()
    proc, out = _python(LOAD_SCRIPT, _env(cache, **NO_COMPILER), timeout=300)
    assert _count(r"^ganloss_cuda: discarding the cached build ", proc.stderr) == 1, proc.stderr
    assert out["load_error"].startswith("JIT build failed: "), out
    assert len(out["fallback"]) == 1
    assert not entry.exists(), "the damaged entry was kept"


def test_failed_build_gives_cause_first_and_log_file(entry_path, tmp_path):
    cache = tmp_path / "cache"
    proc, out = _python(LOAD_SCRIPT, _env(cache, **NO_COMPILER), timeout=300)
    [message] = out["fallback"]
    cause = "/nonexistent/c++: not found"
    assert message.startswith("ganloss_cuda: using the pure-torch reference (JIT build failed: "
                              f"/bin/sh: 1: {cause} (full build log: "), message
    assert len(message) < 400, message
    log = Path(re.search(r"full build log: (\S+)\)", message).group(1))
    assert log.is_file() and log.parent == (cache / entry_path).parent
    assert cause in log.read_text() and "ninja: build stopped" in log.read_text()
    assert _count(rf"^ganloss_cuda: build failed: .*{re.escape(cause)}", proc.stderr) == 1
    # Nothing but the log is left: no entry, no build directory.
    assert [p.name for p in log.parent.iterdir()] == [log.name]


def test_killed_build_leftovers_neither_hang_nor_stay(entry_path, tmp_path):
    """What a killed build leaves: torch's lock file in the entry (the old loader built there, and
    the next import waited for that lock forever), and a build directory of a dead process. A
    build directory of a live process is left alone."""
    cache = tmp_path / "cache"
    entry = cache / entry_path
    entry.mkdir(parents=True)
    (entry / "lock").touch()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    prefix = f"{entry.name}.build-{socket.gethostname()}-"
    dead_build = entry.parent / f"{prefix}{dead}-x1"
    live_build = entry.parent / f"{prefix}{os.getpid()}-x2"
    for build in (dead_build, live_build):
        build.mkdir()
        (build / "lock").touch()
    proc, out = _python(LOAD_SCRIPT, _env(cache, **NO_COMPILER), timeout=120)
    assert _count(r"^ganloss_cuda: discarding the cached build ", proc.stderr) == 1, proc.stderr
    assert out["load_error"].startswith("JIT build failed: "), out
    assert not entry.exists() and not dead_build.exists() and live_build.exists()

"""Loader checks for the JIT cache: entries are written atomically and validated before they are
loaded (a truncated or corrupt library is rebuilt, never loaded), a lock or build directory left
by a killed build neither hangs the import nor stays behind, and a failed build gives a one-line
cause and names the file with the full log.

Everything that imports ganloss_cuda runs in a subprocess with its own GANLOSS_CUDA_CACHE (mostly
tests/load_and_report.py), so this module never triggers a build by importing the package. One
JIT build (the `built_cache` fixture) is copied into the cache of each test that needs a built
entry. A missing compiler is simulated with CXX naming a program that does not exist
(torch.utils.cpp_extension compiles with $CXX).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _subprocess import clean_env, code, count_lines, run_json, script

pytestmark = pytest.mark.extension_not_loaded
NO_COMPILER = {"CXX": "/nonexistent/c++"}
LOAD = script("load_and_report.py")
DISCARDING = r"^ganloss_cuda: discarding the cached build "


def _env(cache, **overrides):
    """os.environ without GANLOSS_CUDA_* settings, with a JIT build in `cache`, plus overrides."""
    return clean_env(GANLOSS_CUDA_JIT=1, GANLOSS_CUDA_CACHE=cache, **overrides)


@pytest.fixture(scope="module")
def entry_path():
    """Where the cache entry for csrc/ lies, relative to the cache root (the loader's own rule)."""
    program = """
        from ganloss_cuda import _build, _ext
        csrc = _build.find_csrc()
        entry = _ext._jit_dir(_build.csrc_hash(csrc), _build.build_with_cuda())
        print('{"entry": "%s"}' % entry.relative_to(_ext.cache_root()))
    """
    _, out, _ = run_json(code(program), _env("/nonexistent-cache", GANLOSS_CUDA_DISABLE=1),
                         timeout=120)
    return Path(out["entry"])


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory, entry_path):
    """A cache whose entry was first planted as the old loader's truncated library (4 KB of an ELF
    file, no manifest), then rebuilt by the import: (cache root, that import's process)."""
    cache = tmp_path_factory.mktemp("built_cache")
    entry = cache / entry_path
    entry.mkdir(parents=True)
    (entry / f"ganloss_{entry.name}.so").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(4089))
    proc, out, _ = run_json(LOAD, _env(cache, GANLOSS_CUDA_STRICT=1), timeout=1800)
    assert out["build_info"].get("source") == "jit", out
    return cache, proc


def _copy(built_cache, tmp_path):
    """A copy of the built cache in this test's tmp_path (its root)."""
    cache = tmp_path / "cache"
    shutil.copytree(built_cache[0], cache)
    return cache


def test_bad_entry_is_rebuilt_with_one_message_then_loaded(built_cache, entry_path, tmp_path):
    _, proc = built_cache
    assert count_lines(DISCARDING, proc.stderr) == 1, proc.stderr
    assert count_lines(r"^ganloss_cuda: compiling ", proc.stderr) == 1, proc.stderr
    assert count_lines(r"^ganloss_cuda: built in \d+ s$", proc.stderr) == 1, proc.stderr

    # The rebuilt entry loads as it is, without a compiler and without a word.
    cache = _copy(built_cache, tmp_path)
    proc, out, _ = run_json(LOAD, _env(cache, GANLOSS_CUDA_STRICT=1, **NO_COMPILER), timeout=300)
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
    proc, out, _ = run_json(LOAD, _env(cache, **NO_COMPILER), timeout=300)
    assert count_lines(DISCARDING, proc.stderr) == 1, proc.stderr
    assert out["load_error"].startswith("JIT build failed: "), out
    assert len(out["fallback"]) == 1
    assert not entry.exists(), "the damaged entry was kept"


def test_failed_build_gives_cause_first_and_log_file(entry_path, tmp_path):
    cache = tmp_path / "cache"
    proc, out, _ = run_json(LOAD, _env(cache, **NO_COMPILER), timeout=300)
    [message] = out["fallback"]
    cause = "/nonexistent/c++: not found"
    assert message.startswith("ganloss_cuda: using the pure-torch reference (JIT build failed: "
                              f"/bin/sh: 1: {cause} (full build log: "), message
    assert len(message) < 400, message
    log = Path(re.search(r"full build log: (\S+)\)", message).group(1))
    assert log.is_file() and log.parent == (cache / entry_path).parent
    assert cause in log.read_text() and "ninja: build stopped" in log.read_text()
    assert count_lines(rf"^ganloss_cuda: build failed: .*{re.escape(cause)}", proc.stderr) == 1
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
    proc, out, _ = run_json(LOAD, _env(cache, **NO_COMPILER), timeout=120)
    assert count_lines(DISCARDING, proc.stderr) == 1, proc.stderr
    assert out["load_error"].startswith("JIT build failed: "), out
    assert not entry.exists() and not dead_build.exists() and live_build.exists()

"""The JIT build at import: from a clean cache (one line before and one after compiling), then a
load from that cache without compiling; GANLOSS_CUDA_NO_JIT never compiles; GANLOSS_CUDA_STRICT
raises instead of falling back. Each import runs in a fresh interpreter."""
from pathlib import Path

import pytest

from _subprocess import (CSRC, clean_env, code, count_lines, package_module, run_json,
                         run_ok, script)

pytestmark = pytest.mark.extension_not_loaded
_build = package_module("_build")


@pytest.mark.slow
def test_jit_build_from_clean_cache(tmp_path, record_property):
    env = clean_env(GANLOSS_CUDA_JIT=1, GANLOSS_CUDA_CACHE=tmp_path, GANLOSS_CUDA_STRICT=1)
    proc, info, first = run_json(script("jit_check.py"), env, timeout=1800)
    record_property("first_run_seconds", round(first, 1))
    assert count_lines(r"^ganloss_cuda: compiling ", proc.stderr) == 1, proc.stderr
    assert count_lines(r"^ganloss_cuda: built in \d+ s$", proc.stderr) == 1, proc.stderr
    assert info["source"] == "jit" and info["build_seconds"] > 0
    assert info["csrc_sha256"] == _build.csrc_hash(CSRC)
    library = Path(info["path"])
    assert library.is_file() and tmp_path in library.parents

    proc, info2, second = run_json(script("jit_check.py"), env, timeout=600)
    record_property("cached_run_seconds", round(second, 1))
    assert count_lines(r"^ganloss_cuda: compiling ", proc.stderr) == 0, proc.stderr
    assert count_lines(r"^ganloss_cuda: built in ", proc.stderr) == 0, proc.stderr
    assert info2["source"] == "jit" and info2["build_seconds"] == 0
    assert info2["path"] == str(library)


def test_strict_disable_raises_at_import():
    program = """
        try:
            import ganloss_cuda
        except RuntimeError as e:
            print("RuntimeError:", e)
        else:
            raise SystemExit("import ganloss_cuda did not raise")
    """
    env = clean_env(GANLOSS_CUDA_DISABLE=1, GANLOSS_CUDA_STRICT=1)
    proc, _ = run_ok(code(program), env, timeout=300)
    assert "RuntimeError:" in proc.stdout and "GANLOSS_CUDA_DISABLE" in proc.stdout, proc.stdout
    assert "GANLOSS_CUDA_STRICT" in proc.stdout, proc.stdout


def test_no_jit_never_compiles(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = clean_env(GANLOSS_CUDA_NO_JIT=1, GANLOSS_CUDA_JIT=1, GANLOSS_CUDA_CACHE=cache)
    proc, result, _ = run_json(script("load_and_report.py"), env, timeout=300)
    assert not result["available"]
    assert len(result["fallback"]) == 1 and "GANLOSS_CUDA_NO_JIT" in result["fallback"][0]
    assert "compiling" not in proc.stderr and "built in" not in proc.stderr, proc.stderr
    assert list(cache.rglob("*")) == [], "the cache was written to"

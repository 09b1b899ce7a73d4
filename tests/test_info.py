"""What the package reports and declares about its build: `python -m ganloss_cuda.info` (run in a
fresh interpreter), the csrc hash against its documented definition, and the dependencies."""
import json
import re

import pytest

from _subprocess import CSRC, ROOT, clean_env, code, package_module, run_json, run_ok

pytestmark = pytest.mark.extension_not_loaded
_build = package_module("_build")
# docs/gpu-results.md's example of the csrc_sha256 definition: a tree and its hash.
CSRC_HASH_EXAMPLE = ({"ganloss.cpp": b"int a;\n", "cpu/empty.h": b"", "cpu/feature.cpp": b"x"},
                     "e5aa9617a0009963fa1ee9bfac3ae85b42ff6b4e1e4396fc0b8c6044e0cab700")


@pytest.fixture(scope="module")
def info_output():
    # NO_JIT: the setup.py build when it is fresh, else the fallback; never a compile.
    proc, _ = run_ok(["-m", "ganloss_cuda.info"], clean_env(GANLOSS_CUDA_NO_JIT=1), timeout=300)
    facts = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        facts[key] = value.strip()
    return facts


def test_info_prints_csrc_hash(info_output):
    assert info_output.get("csrc_sha256") == _build.csrc_hash(CSRC), info_output
    assert info_output.get("csrc") == str(CSRC)
    assert re.fullmatch(r"[0-9a-f]{64}", info_output["csrc_sha256"])


def test_csrc_hash_matches_documented_definition(tmp_path):
    """_build.csrc_hash gives docs/gpu-results.md's example value; a symbolic link (not a regular
    file) in the tree changes nothing."""
    files, want = CSRC_HASH_EXAMPLE
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "cpu" / "link.h").symlink_to(tmp_path / "ganloss.cpp")
    assert _build.csrc_hash(tmp_path) == want
    assert want in (ROOT / "docs" / "gpu-results.md").read_text()


def test_numpy_is_a_dependency():
    """torch warns "Failed to initialize NumPy" at import without it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"numpy\b", dep) for dep in project["dependencies"])


def test_info_reports_what_verified_each_cuda_op(info_output, tmp_path):
    """One cuda_verified line per op; the emulation verdict follows kernel_status.json's csrc
    hash (this csrc: passed; another: stale; failed cases: FAILED)."""
    assert "cuda_verified" in info_output
    status = tmp_path / "kernel_status.json"
    here = _build.csrc_hash(CSRC)
    verdicts = {}
    for name, csrc, passed in (("now", here, True), ("old", "0" * 64, True), ("bad", here, False)):
        status.write_text(json.dumps({"emulation": {
            "csrc_hash": csrc, "date": "D", "ops": {"feature_loss": {"passed": passed, "cases": 1}}}}))
        _, out, _ = run_json(code(f"""
            import json, pathlib, ganloss_cuda.info as i
            i.STATUS_FILE = pathlib.Path({str(status)!r})
            print(json.dumps(i.cuda_verification({here!r})))
            """), clean_env(GANLOSS_CUDA_NO_JIT=1), timeout=300)
        verdicts[name] = out
    assert verdicts["now"]["feature_loss"]["emulation"] == "passed at this csrc (D)"
    assert verdicts["old"]["feature_loss"]["emulation"].startswith("passed at an older csrc 000000")
    assert verdicts["bad"]["feature_loss"]["emulation"].startswith("FAILED")
    assert verdicts["now"]["feature_loss_backward"]["emulation"] == "never run"
    assert verdicts["now"]["feature_loss"]["gpu"] == "never"  # no GPU results file yet

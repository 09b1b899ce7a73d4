"""The pure-torch fallback: with the extension disabled, every public function and module gives
the reference's values and gradients, with exactly one FallbackWarning that names the cause.
tests/fallback_check.py runs in a fresh interpreter (the checks are there)."""
import pytest

from _subprocess import clean_env, run_json, script

pytestmark = pytest.mark.extension_not_loaded


def test_fallback_when_disabled(record_property):
    proc, result, seconds = run_json(script("fallback_check.py"),
                                     clean_env(GANLOSS_CUDA_DISABLE=1), timeout=600)
    record_property("seconds", round(seconds, 1))
    assert result["checks"] >= 50
    assert result["fallback_warnings"] == 1, result["messages"]
    assert "GANLOSS_CUDA_DISABLE" in result["messages"][0]
    assert "GANLOSS_CUDA_DISABLE" in result["load_error"]
    assert "compiling" not in proc.stderr

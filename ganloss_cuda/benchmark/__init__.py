"""Benchmarks and self-checks of every loss family: one family-independent harness (harness.py:
timing, spread, noise, peak memory, kernel counts, copy and matmul probes, correctness gate,
tables) and one suite per family (feature.py, gram.py, adversarial.py). Used by
`python -m ganloss_cuda`, benchmarks/ and tools/.

Rule: harness.py imports no suite; a suite imports the harness and its own family's functions
only; SUITES is the one shared list, and a new family adds its module here and one entry to it.
"""
from . import adversarial, feature, gram
from .harness import (NOISY_IQR, CorrectnessError, Suite, bandwidth_probe, format_table,
                      input_sets, matmul_probe, provider_note, run_case, run_self_checks, run_set,
                      speedups, time_interleaved)

SUITES = (feature.SUITE, gram.SUITE, adversarial.SUITE)

__all__ = ["NOISY_IQR", "SUITES", "CorrectnessError", "Suite", "adversarial", "bandwidth_probe",
           "feature", "format_table", "gram", "input_sets", "matmul_probe", "provider_note",
           "run_case", "run_self_checks", "run_set", "speedups", "time_interleaved"]

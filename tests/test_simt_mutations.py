"""The mutation script of the SIMT emulation tier (tests/simt/mutate.py): one-line kernel bugs,
injected one at a time into a copy of csrc/, each of which the tier must catch.

test_patterns_match_the_sources always runs (no build): every mutant's pattern must be found in
the current csrc/ exactly as specified, so a kernel edit that invalidates one fails CI at once
(update the pattern in mutate.py's MUTANTS). The mutation run itself takes about a minute per
mutant: it runs only with GANLOSS_SIMT_MUTATIONS=1."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _subprocess import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent / "simt"))
import build  # noqa: E402
import mutate  # noqa: E402

MIN_MUTANTS = 15


@pytest.mark.extension_not_loaded
def test_patterns_match_the_sources():
    problems = mutate.check_patterns(ROOT / "csrc")
    assert not problems, "mutants whose pattern no longer matches csrc/ (update tests/simt/mutate.py):\n" + \
        "\n".join(f"  {name}: {why}" for name, why in problems.items())
    assert len(mutate.MUTANTS) >= MIN_MUTANTS
    for m in mutate.MUTANTS:
        text, line = mutate.mutated_text(m, ROOT / "csrc")
        assert text != (ROOT / "csrc" / m.file).read_text(), f"{m.name} changes nothing"
        assert line >= 1


@pytest.mark.extension_not_loaded
def test_mutation_of_a_repeated_line(tmp_path):
    """"k/n" picks the k-th of exactly n occurrences; a different count is reported by name."""
    (tmp_path / "cuda").mkdir()
    (tmp_path / "cuda" / "k.cu").write_text("a;\n  __syncthreads();\nb;\n  __syncthreads();\n")
    second = mutate.Mutant("second", "cuda/k.cu", "__syncthreads();", ";", "2/2", "")
    text, line = mutate.mutated_text(second, tmp_path)
    assert line == 4 and text == "a;\n  __syncthreads();\nb;\n  ;\n"
    every = mutate.Mutant("every", "cuda/k.cu", "__syncthreads();", ";", "all", "")
    assert mutate.mutated_text(every, tmp_path)[0] == "a;\n  ;\nb;\n  ;\n"
    for at, why in ((None, "occurs 2 times"), ("1/3", "occurs 2 times")):
        assert why in mutate.locate(mutate.Mutant("m", "cuda/k.cu", "__syncthreads();", ";", at, ""),
                                    tmp_path)[1]
    missing = mutate.Mutant("gone", "cuda/k.cu", "__syncwarp();", ";", None, "")
    assert "pattern missing" in mutate.locate(missing, tmp_path)[1]


@pytest.mark.simt
@pytest.mark.slow
@pytest.mark.extension_not_loaded
@pytest.mark.skipif(os.environ.get("GANLOSS_SIMT_MUTATIONS") != "1",
                    reason="the mutation run takes about a minute per mutant: set "
                           "GANLOSS_SIMT_MUTATIONS=1")
@pytest.mark.skipif(build.unavailable() is not None, reason=f"SIMT tier: {build.unavailable()}")
def test_every_mutant_is_caught(tmp_path):
    out = tmp_path / "mutants.json"
    proc = subprocess.run([sys.executable, str(build.SIMT / "mutate.py"), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600)
    assert out.exists(), f"mutate.py failed before running mutants:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) >= MIN_MUTANTS
    bad = [r for r in rows if not r["result"].startswith("caught")]
    assert not bad, "\n".join(f"{r['name']} ({r['where']}): {r['result']}: {r['detail']}" for r in bad)
    assert proc.returncode == 0, proc.stdout[-4000:]

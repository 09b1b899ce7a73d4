"""gcov line coverage of the SIMT tier's run (csrc/cuda and csrc/common), and the record of the
tier's verdict that `python -m ganloss_cuda.info` reads (ganloss_cuda/kernel_status.json)."""
import datetime
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from _subprocess import package_module  # noqa: E402
STATUS_FILE = ROOT / "ganloss_cuda" / "kernel_status.json"
COVERED_DIRS = ("cuda", "common")


def collect(build_dir: Path, csrc: Path) -> dict:
    """{"files": {relative path: {"covered", "lines", "percent"}}, "total": {...}}: a line counts
    once however many template instances and translation units hold it, covered if any ran it."""
    lines = {}  # (file, line number) -> executed
    for gcda in sorted(Path(build_dir).glob("*.gcda")):
        out = subprocess.run(["gcov", "--json-format", "--stdout", "-o", str(build_dir), str(gcda)],
                             capture_output=True, text=True, cwd=build_dir).stdout
        for doc in out.splitlines():
            for f in json.loads(doc)["files"]:
                path = Path(f["file"])
                try:
                    rel = path.resolve().relative_to(Path(csrc).resolve())
                except ValueError:
                    continue
                if rel.parts[0] not in COVERED_DIRS:
                    continue
                for entry in f["lines"]:
                    key = (rel.as_posix(), entry["line_number"])
                    lines[key] = lines.get(key, False) or entry["count"] > 0
    files = {}
    for (name, _), hit in lines.items():
        s = files.setdefault(name, {"covered": 0, "lines": 0})
        s["lines"] += 1
        s["covered"] += int(hit)
    total = {"covered": sum(s["covered"] for s in files.values()),
             "lines": sum(s["lines"] for s in files.values())}
    for s in [*files.values(), total]:
        s["percent"] = round(100.0 * s["covered"] / s["lines"], 1) if s["lines"] else 100.0
    uncovered = sorted(k for k, hit in lines.items() if not hit)
    return {"files": dict(sorted(files.items())), "total": total, "uncovered": uncovered}


def format_table(report: dict) -> str:
    rows = [f"{'file':40s} {'lines':>6s} {'covered':>8s} {'%':>6s}"]
    for name, s in [*report["files"].items(), ("total", report["total"])]:
        rows.append(f"{name:40s} {s['lines']:6d} {s['covered']:8d} {s['percent']:6.1f}")
    by_file = {}
    for name, line in report["uncovered"]:
        by_file.setdefault(name, []).append(str(line))
    rows += [f"not run: {name}: lines {', '.join(nums)}" for name, nums in by_file.items()]
    return "\n".join(rows)


def record(records: dict, report: dict):
    """Writes the tier's verdict per CUDA op at the current csrc hash (GPU verdicts come from
    the committed GPU results files: ganloss_cuda/info.py)."""
    import cases

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    ops = {}
    for family, names in cases.OPS.items():
        mine = [r for name, r in records.items() if name.startswith(family + "/")]
        passed = bool(mine) and all(r["error"] is None for r in mine)
        for op in names:
            ops[op] = {"passed": passed, "cases": len(mine)}
    status = {"emulation": {
        "csrc_hash": package_module("_build").csrc_hash(ROOT / "csrc"), "commit_before": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "line_coverage_percent": report["total"]["percent"], "ops": ops}}
    STATUS_FILE.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":  # the table of the last run of the tier (tests/test_simt.py)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import build

    if not any(build.build_dir().glob("*.gcda")):
        sys.exit(f"no coverage data in {build.build_dir()}: run the tier first")
    print(format_table(collect(build.build_dir(), build.CSRC)))

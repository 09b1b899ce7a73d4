"""Runs cases of the SIMT emulation tier (cases.py) in this process, which must have been started
with build.asan_env(); writes one JSON line per case to --out as it goes ("started", then the
result), so that a case that crashes the process is still named.

    python tests/simt/run_cases.py --out results.jsonl [--fail-fast] [CASE ...]
(default: every case; --fail-fast stops at the first failing case, as the mutation script does)"""
import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402


def start_workers(names, jobs, out_dir, env, fail_fast=False):
    """Starts `jobs` processes of this script over a round-robin split of `names` (each in the
    given order), with output in out_dir/worker<k>.jsonl and .err; returns [(process, jsonl
    path, err path)]. env: build.asan_env(), plus what the caller adds."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = []
    for w in range(max(1, min(jobs, len(names)))):
        out, err = out_dir / f"worker{w}.jsonl", out_dir / f"worker{w}.err"
        out.write_text("")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(out),
               *(["--fail-fast"] if fail_fast else []), *names[w::jobs]]
        with open(err, "w") as ef:
            proc = subprocess.Popen(cmd, env=env, cwd=build.ROOT, stdout=ef,
                                    stderr=subprocess.STDOUT)
        workers.append((proc, out, err))
    return workers


def read_records(out):
    """A worker's output so far: ({case: its "done" record}, the case it started and has not
    finished, or None). A line still being written is skipped."""
    done, running = {}, None
    for line in Path(out).read_text().splitlines() if Path(out).exists() else []:
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r["status"] == "started":
            running = r["case"]
        else:
            done[r["case"]] = r
            running = None
    return done, running


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-fast", action="store_true")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    import cases  # torch: only in the worker

    module = build.load()
    names = args.names or cases.CASES
    with open(args.out, "a") as out:
        def emit(record):
            out.write(json.dumps(record) + "\n")
            out.flush()

        for name in names:
            emit({"case": name, "status": "started"})
            module.reset_stats()
            t0 = time.perf_counter()
            try:
                cases.run_case(module, name)
                error = None
            except Exception as e:  # noqa: BLE001 (every failure is reported per case)
                error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
            emit({"case": name, "status": "done", "error": error,
                  "seconds": round(time.perf_counter() - t0, 3), "stats": module.stats()})
            if error and args.fail_fast:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

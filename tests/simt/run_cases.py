"""Runs cases of the SIMT emulation tier (cases.py) in this process, which must have been started
with build.asan_env(); writes one JSON line per case to --out as it goes ("started", then the
result), so that a case that crashes the process is still named.

    python tests/simt/run_cases.py --out results.jsonl [--fail-fast] [CASE ...]
(default: every case; --fail-fast stops at the first failing case, as the mutation script does)"""
import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402
import cases  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-fast", action="store_true")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
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

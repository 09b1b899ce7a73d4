"""Mutation script of the SIMT emulation tier: injects one-line bugs into a copy of the kernel
sources, one at a time, and shows that the tier fails for each (docs/emulation.md). Too slow for
CI (about a minute per mutant: ninja rebuilds the mutated translation unit); run it whenever the
kernels change, and record the result (--markdown prints the table for the docs).

    python tests/simt/mutate.py [--csrc PATH] [--only NAME ...] [--markdown] [--timeout S]
    python tests/simt/mutate.py --list      (every mutant and where its pattern is, no build)

How it works: csrc/ (or --csrc) is mirrored into a fixed directory ($TMPDIR/ganloss_simt_mutants/
<key>/csrc, where <key> names the source tree; files are rewritten only when their content
differs, so the SIMT build keyed by that path stays incremental). The unmutated copy is built and
must pass every case (the baseline). Then, per mutant: the one line is changed, the module is
rebuilt (GANLOSS_SIMT_CSRC=<copy>; a build error is "does not compile", which is not a catch) and
the cases run in worker processes started with build.asan_env(), quick and broad cases first,
until the first failure. A mutant is caught when a case fails (wrong values, results that differ
between schedules, a fault of the runtime: deadlock, divergent barrier, lane outside a mask), a
worker dies (AddressSanitizer / UBSan abort) or the run exceeds --timeout ("timeout": e.g. an
endless loop); else it SURVIVED. The original file is restored after each mutant. Exit status 0
only when every mutant was caught.

Defining a mutant (MUTANTS below, one per line): (name, file under csrc/, pattern, replacement,
at, bug). The pattern is an exact substring of one line of the file (no newline); the first
`pattern` in the chosen occurrence is replaced by `replacement`. `at` says which occurrence:
    None    the pattern must occur exactly once in the file;
    "k/n"   the k-th (1-based, in file order) of exactly n occurrences, so that a kernel edit that
            adds or removes one is noticed rather than silently moving the mutant;
    "all"   every occurrence (at least one), e.g. a helper copied into two kernels.
When the kernels change, a pattern that no longer matches is reported by name (--list, the
always-run test tests/test_simt_mutations.py::test_patterns_match_the_sources, and here, as
"pattern missing"); update its pattern to the new line.
"""
import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SIMT = Path(__file__).resolve().parent
ROOT = SIMT.parent.parent
sys.path.insert(0, str(SIMT))
import run_cases  # noqa: E402


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str         # relative to csrc/
    pattern: str      # exact substring of one line
    replacement: str
    at: object        # None (unique), "k/n" or "all"
    bug: str          # what it models


M = Mutant
FCU, HLP, FH, CRH = "cuda/feature.cu", "cuda/cuda_helpers.cuh", "common/feature.h", "common/criterion.h"
GCU, GH = "cuda/gram.cu", "common/gram.h"
ACU, ALH = "cuda/adversarial.cu", "cuda/adversarial_launch.h"
# fmt: off
MUTANTS = [
    # Barriers: each __syncthreads removed, one mutant per barrier; one reached by half the block.
    M("no-sync-finalize-stats", FCU, "__syncthreads();", ";", "1/3", "finalize: segment sums read before all warps wrote them"),
    M("no-sync-finalize-terms", FCU, "__syncthreads();", ";", "2/3", "finalize: terms combined before every layer's thread wrote them"),
    M("no-sync-is-last", FCU, "__syncthreads();", ";", "3/3", "shared is_last read before thread 0 wrote it"),
    M("no-sync-block-sum-1", HLP, "__syncthreads();", ";", "1/2", "block_sum: warp 0 reads the warp partials before they are written"),
    M("no-sync-block-sum-2", HLP, "__syncthreads();", ";", "2/2", "block_sum: the next block_sum overwrites partials warp 0 still reads"),
    M("partial-barrier", HLP, "__syncthreads();", "if (threadIdx.x < 128) __syncthreads();", "1/2", "a barrier reached by only half of the block"),
    # Warp collectives.
    M("half-warp-mask", HLP, "__shfl_xor_sync(0xffffffffu, v, o)", "__shfl_xor_sync(0x0000ffffu, v, o)", None, "warp_sum shuffles with a half-warp mask"),
    M("warp-sum-from-8", HLP, "for (int o = 16; o > 0; o >>= 1)", "for (int o = 8; o > 0; o >>= 1)", None, "warp_sum starts at offset 8: sums half-warps only"),
    M("block-sum-reads-9", HLP, "v = threadIdx.x < Threads / 32 ? smem[threadIdx.x] : A(0);", "v = threadIdx.x <= Threads / 32 ? smem[threadIdx.x] : A(0);", None, "block_sum reads one shared partial past the array"),
    # Bounds: tails, vector loops, alignment.
    M("tail-off-by-one", FCU, "for (int k = k0 + threadIdx.x; k < n; k += kThreads) {", "for (int k = k0 + threadIdx.x; k <= n; k += kThreads) {", None, "scalar tail visits element n (one past the chunk)"),
    M("vector-load-overrun", FCU, "if (i + u * kThreads < nvec) {", "if (i + u * kThreads <= nvec) {", "1/3", "vector loop loads one vector past the chunk's vectors"),
    M("vector-store-overrun", FCU, "if (i + u * kThreads < nvec) {", "if (i + u * kThreads <= nvec) {", "2/3", "vector loop computes and stores one vector past the chunk's vectors"),
    M("scale-load-overrun", FCU, "if (i + u * kThreads < nvec) v[u]", "if (i + u * kThreads <= nvec) v[u]", None, "scale_grads loads one vector past the chunk's vectors"),
    M("no-alignment-check", FCU, "if (aligned16(x) && aligned16(y) &&", "if (true || aligned16(x) && aligned16(y) &&", None, "16-byte vector path taken for misaligned pointers"),
    M("scale-no-alignment-check", FCU, "if (aligned16(g)) {", "if (true) {", None, "scale_grads: vector path taken for a misaligned gradient"),
    # Strides and offsets.
    M("tail-half-stride", FCU, "for (int k = k0 + threadIdx.x; k < n; k += kThreads) {", "for (int k = k0 + threadIdx.x; k < n; k += kThreads / 2) {", None, "scalar tail stride of half a block: elements done twice"),
    M("vector-stride", FCU, "for (int i = threadIdx.x; i < nvec; i += kUnroll * kThreads) {", "for (int i = threadIdx.x; i < nvec; i += kThreads) {", "1/2", "vector loop advances one vector per thread instead of kUnroll: vectors done again"),
    M("chunk-begin-lost", FCU, "const int64_t first = r.row * L.row_len + r.begin;", "const int64_t first = r.row * L.row_len;", None, "every chunk of a row reads the row's first chunk"),
    M("launch-offset-lost", FCU, "const int64_t chunk = p.chunk_offset + blockIdx.x;", "const int64_t chunk = blockIdx.x;", None, "forward ignores the launch's chunk offset (launches after the first)"),
    # Last block and finalize.
    M("last-block-test", FCU, "== gridDim.x - 1;", "== gridDim.x - 2;", None, "wrong last-block test: finalizes before the last block (or never)"),
    M("finalize-layer-owner", FCU, "p.layers[l + 1].seg_begin - first_seg <= g) ++l;", "p.layers[l + 1].seg_begin - first_seg < g) ++l;", None, "finalize: a segment summed with the previous layer's chunks"),
    M("finalize-skips-last-layer", FCU, "if (threadIdx.x < p.num_layers)", "if (threadIdx.x < p.num_layers - 1)", None, "finalize: the launch's last layer gets no terms or grad factors"),
    M("finalize-chunk-stride", FCU, "k < segment_chunks(L); k += 32)", "k < segment_chunks(L); k += 16)", None, "finalize: chunk partials summed twice"),
    # Gradients and masks.
    M("segment-factor-column", FCU, "return g * p.grad_factors[kStatCols * (L.seg_begin + s) + 2];", "return g * p.grad_factors[kStatCols * (L.seg_begin + s) + 1];", None, "backward/scale read the mask-sum column as the grad factor"),
    M("segment-upstream-index", FCU, "p.reduction == Reduction::PerSample ? s : 0;", "p.reduction == Reduction::PerSample ? 0 : 0;", None, "per-sample upstream gradient of sample 0 used for every sample"),
    M("dy-sign-vector", FCU, "gy.v[e] = from_acc<T>(-g);", "gy.v[e] = from_acc<T>(g);", None, "vector path: dy = +dx"),
    M("dy-sign-tail", FCU, "if (dy) dy[k] = from_acc<T>(-g);", "if (dy) dy[k] = from_acc<T>(g);", None, "scalar tail: dy = +dx"),
    M("mask-nchw-nhwc-swapped", FCU, "m[NHWC ? by.div(j) : by.mod(j)]", "m[NHWC ? by.mod(j) : by.div(j)]", None, "one-channel mask indexed with the other layout's rule"),
    M("full-mask-chunk-offset", FCU, "f(FullMask<A, M>{row_mask + r.begin});", "f(FullMask<A, M>{row_mask});", None, "full mask read from the row's start in every chunk"),
    # Shared math (common/feature.h, common/criterion.h, also compiled into the host code: rebuilds more).
    M("locate-chunk-layer", FH, "while (l + 1 < num_layers && layers[l + 1].chunk_begin <= chunk) ++l;", "while (l + 1 < num_layers && layers[l + 1].chunk_begin < chunk) ++l;", None, "a layer's first chunk attributed to the previous layer"),
    M("l1-sign-at-zero", CRH, "A(int(d > A(0)) - int(d < A(0)))", "A(int(d >= A(0)) - int(d < A(0)))", None, "L1 gradient 1 at d == 0 (torch: 0)"),
    # The Gram / style kernels (cuda/gram.cu, common/gram.h).
    M("gram-no-sync-staged", GCU, "    __syncthreads();", "    ;", "1/5", "forward GEMM: tiles read before every thread staged them"),
    M("gram-no-sync-next-step", GCU, "__syncthreads();  // before the next step overwrites the tiles", ";", None, "forward GEMM: the next step's staging overwrites tiles still being read"),
    M("gram-no-sync-backward-staged", GCU, "    __syncthreads();", "    ;", "3/5", "backward GEMM: A and F tiles read before they are staged"),
    M("gram-slab-partial-index", GCU, "(L.partial_begin + w) * (kT * kT)", "(L.partial_begin + w - slab) * (kT * kT)", None, "split-K: every slab writes slab 0's partial"),
    M("gram-slab-skipped", GCU, "for (int s = 0; s < L.split.splits; ++s) {", "for (int s = 0; s + 1 < L.split.splits; ++s) {", None, "split-K: the last slab's partial is not reduced"),
    M("gram-no-mirror", GCU, "if (ti != tj) d[cj * c + ci] = v;", "if (ti == tj) d[cj * c + ci] = v;", None, "D's lower-triangle tiles never written"),
    M("gram-mirror-weight", GCU, "(ti != tj ? 2.0 : 1.0)", "1.0", None, "criterion terms of a mirrored tile counted once"),
    M("gram-y-not-negated", GCU, "put(yj, true)", "put(yj, false)", None, "D = s (X X^T + Y Y^T)"),
    M("gram-no-lo", GCU, "from_acc<T>(scaled - to_acc(hi))", "from_acc<T>(0.0f)", None, "backward: A rounded once to 16 bits (no lo term)"),
    M("gram-split-scale", GCU, "14 - ilogbf(bound)", "18 - ilogbf(bound)", None, "backward: hi = A * 2^e overflows fp16"),
    M("gram-dy-sign", GCU, "(is_y ? -1.0 : 1.0)", "1.0", None, "dY = +coef A Y"),
    M("gram-tile-pair", GH, "p -= tiles - i;", "p -= tiles - i - 1;", None, "upper-triangle tile pairs numbered wrongly"),
    # The adversarial kernels (cuda/adversarial.cu, cuda/adversarial_launch.h).
    M("adv-no-sync-is-last", ACU, "__syncthreads();", ";", "2/2", "shared is_last read before thread 0 wrote it"),
    M("adv-finalize-chunk-stride", ACU, "k < X.chunks_per_row; k += 32)", "k < X.chunks_per_row; k += 16)", None, "finalize: a segment's chunk partials counted twice"),
    M("adv-segment-row", ACU, "X.chunk_begin + row * X.chunks_per_row;", "X.chunk_begin;", None, "finalize: every sample sums sample 0's chunks"),
    M("adv-upstream-index", ACU, "static_cast<const float*>(p.grad)[c.row]", "static_cast<const float*>(p.grad)[0]", None, "backward: every sample gets sample 0's upstream gradient"),
    M("adv-label-swapped", ACU, "X.real ? p.real_label : p.fake_label", "X.real ? p.fake_label : p.real_label", "all", "real and fake labels swapped"),
    M("adv-locate-first-chunk", ALH, "p.tensors[t + 1].chunk_begin <= chunk", "p.tensors[t + 1].chunk_begin < chunk", None, "an input's first chunk attributed to the previous input"),
]
# fmt: on

# Cases run last (slow): the 1M-element layers.
SLOW_MARKERS = ("-1M",)


# ---------------------------------------------------------------------------------------------
# Patterns.

def _occurrences(text, pattern):
    out, i = [], text.find(pattern)
    while i >= 0:
        out.append(i)
        i = text.find(pattern, i + 1)
    return out


def locate(mutant, csrc):
    """([offsets to replace], None) or (None, why the pattern does not match as specified)."""
    if "\n" in mutant.pattern or "\n" in mutant.replacement:
        return None, "pattern and replacement must be single-line"
    path = Path(csrc) / mutant.file
    if not path.is_file():
        return None, f"{mutant.file} not found"
    found = _occurrences(path.read_text(), mutant.pattern)
    if not found:
        return None, f"pattern missing from {mutant.file}: {mutant.pattern!r}"
    if mutant.at is None:
        if len(found) != 1:
            return None, f"pattern occurs {len(found)} times in {mutant.file} (expected once)"
        return found, None
    if mutant.at == "all":
        return found, None
    k, n = (int(v) for v in str(mutant.at).split("/"))
    if len(found) != n:
        return None, f"pattern occurs {len(found)} times in {mutant.file} (expected {n})"
    return [found[k - 1]], None


def check_patterns(csrc):
    """{mutant name: problem} for every mutant whose pattern does not match as specified, plus
    list-level problems (duplicate names) under the key '*'."""
    problems = {}
    names = [m.name for m in MUTANTS]
    if len(set(names)) != len(names):
        problems["*"] = "duplicate mutant names"
    for m in MUTANTS:
        _, why = locate(m, csrc)
        if why:
            problems[m.name] = why
    return problems


def mutated_text(mutant, csrc):
    """(mutated file text, 1-based line of the first change)."""
    text = (Path(csrc) / mutant.file).read_text()
    offsets, why = locate(mutant, csrc)
    if why:
        raise ValueError(f"mutant {mutant.name}: {why}")
    line = text.count("\n", 0, offsets[0]) + 1
    for off in sorted(offsets, reverse=True):
        text = text[:off] + mutant.replacement + text[off + len(mutant.pattern):]
    return text, line


def line_of(mutant, csrc):
    offsets, why = locate(mutant, csrc)
    if why:
        return None
    return (Path(csrc) / mutant.file).read_text().count("\n", 0, offsets[0]) + 1


# ---------------------------------------------------------------------------------------------
# The copy of csrc/.

def work_dir(src):
    key = hashlib.sha256(str(Path(src).resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / "ganloss_simt_mutants" / key


def sync_copy(src, dst):
    """Mirrors src into dst, rewriting only files whose content differs (keeps ninja
    incremental); removes files that src lacks."""
    src, dst = Path(src), Path(dst)
    seen = set()
    for f in src.rglob("*"):
        if f.is_dir() or "__pycache__" in f.parts:
            continue
        rel = f.relative_to(src)
        seen.add(rel)
        target = dst / rel
        data = f.read_bytes()
        if not target.exists() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for f in list(dst.rglob("*")):
        if f.is_file() and f.relative_to(dst) not in seen:
            f.unlink()


# ---------------------------------------------------------------------------------------------
# Running the tier against the copy.

def ordered_cases():
    """Every case, quick and broad ones first: the small-layer feature cases round-robin over the
    dtypes, each dtype's cycling through criteria and mask kinds together (so every dtype,
    criterion and mask kind comes early), then multi-launch and misaligned
    cases, the self-tests, and the 1M-element cases last."""
    import cases

    small = {dt: [] for dt in cases.DTYPES}
    rest, slow = [], []
    for name, c in cases.FEATURE_CASES.items():
        if any(s in name for s in SLOW_MARKERS):
            slow.append(name)
        elif name.endswith(("-30layers", "-misaligned")):
            rest.append(name)
        else:
            small[c.dtype].append(name)
    # Within a dtype, criterion and mask kind change together: l1-none, mse-full, ...
    for dt in small:
        small[dt].sort(key=lambda n: _diagonal(cases.FEATURE_CASES[n], cases))
    out = []
    while any(small.values()):
        for dt in small:
            if small[dt]:
                out.append(small[dt].pop(0))
    out += rest + [f"selftest/{n}" for n in cases.SELFTESTS] + slow
    missing = set(cases.CASES) - set(out)
    return out + sorted(missing)


def family_first(names, mutant):
    """names with the cases of the mutated file's family first (gram.cu, gram.h: "gram/...")."""
    family = next((f"{f}/" for f in ("gram", "adversarial") if f in mutant.file), "feature/")
    return [n for n in names if n.startswith(family)] + [n for n in names if not n.startswith(family)]


def _diagonal(case, cases):
    c, m = cases.CRITERIA.index(case.criterion), cases.MASKS.index(case.mask)
    return ((m - c) % len(cases.MASKS), c)


def _env(copy):
    import build

    env = build.asan_env()
    env["GANLOSS_SIMT_CSRC"] = str(copy)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def build_copy(copy, timeout):
    """None, or the build's error (the first compiler error line and the tail of its output)."""
    env = dict(os.environ, GANLOSS_SIMT_CSRC=str(copy))
    try:
        proc = subprocess.run([sys.executable, str(SIMT / "build.py")], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "build timed out"
    if proc.returncode == 0:
        return None
    out = proc.stdout + proc.stderr
    errors = [ln for ln in out.splitlines() if "error" in ln]
    return (errors[0] if errors else out.strip().splitlines()[-1] if out.strip() else "failed")


def _sanitizer_line(text):
    """The line of a worker's output that says why it died: UBSan's runtime error, ASan's
    summary, else the last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for key in ("runtime error:", "SUMMARY: AddressSanitizer:", "ERROR: AddressSanitizer"):
        for ln in lines:
            if key in ln:
                return re.sub(r"\S*/csrc/", "csrc/", re.sub(r" in \S.*$", "", ln))
    return lines[-1] if lines else ""


def _brief(message):
    """A failure message without the prefixes every one of its kind shares."""
    for prefix in ("RuntimeError: CUDA error: simt: ", "AssertionError: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def run_tier(copy, names, jobs, timeout, tmp, fail_fast=True):
    """Runs the cases in `jobs` worker processes (round-robin split, each in the given order),
    stopping all at the first failure when fail_fast. Returns a dict: status ("pass", "fail",
    "crash", "timeout"), case, message, seconds, done (cases finished)."""
    t0 = time.monotonic()
    procs = run_cases.start_workers(names, jobs, tmp, _env(copy), fail_fast)

    try:
        result = _wait(procs, fail_fast, timeout, t0)
    finally:  # also on an interrupt: no worker outlives the run
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def _wait(procs, fail_fast, timeout, t0):
    result, done = None, 0
    while True:
        time.sleep(0.2)
        running, done = False, 0
        for p, out, err in procs:
            finished, last = run_cases.read_records(out)
            done += len(finished)
            failed = [r for r in finished.values() if r["error"]]
            if failed and result is None:
                result = {"status": "fail", "case": failed[0]["case"],
                          "message": _brief(failed[0]["error"].splitlines()[0])}
            rc = p.poll()
            if rc is None:
                running = True
            elif rc != 0 and result is None:
                result = {"status": "crash", "case": last,
                          "message": f"exit {rc}: {_sanitizer_line(err.read_text())}"}
        if not running or (result is not None and fail_fast):
            break
        if time.monotonic() - t0 > timeout:
            pending = [c for _, out, _ in procs if (c := run_cases.read_records(out)[1])]
            result = result or {"status": "timeout", "case": pending[0] if pending else None,
                                "message": f"no result within {timeout:.0f} s"}
            break
    result = result or {"status": "pass", "case": None, "message": ""}
    result["done"] = done
    return result


# ---------------------------------------------------------------------------------------------
# Report.

def _short(text, n=110):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def table(rows, markdown):
    head = ["mutant", "file:line", "result", "s", "first failure"]
    body = [[r["name"], r["where"], r["result"], f"{r['seconds']:.0f}" if r["seconds"] else "",
             _short(r["detail"])] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    return "\n".join(fmt.format(*row) for row in [head] + body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csrc", default=str(ROOT / "csrc"), help="kernel sources to mutate")
    parser.add_argument("--work", help="where the copy lives (default: $TMPDIR/ganloss_simt_mutants/<key>)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and their lines")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--timeout", type=float, help="seconds per mutant's cases "
                        "(default: 3 x the baseline's, at least 300)")
    parser.add_argument("--build-timeout", type=float, default=1800)
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the unmutated run (it must pass; also sets the timeout)")
    args = parser.parse_args()

    src = Path(args.csrc).resolve()
    problems = check_patterns(src)
    if "*" in problems:
        sys.exit(f"mutant list: {problems['*']}")
    mutants = MUTANTS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTANTS}
        if unknown:
            sys.exit(f"unknown mutants: {sorted(unknown)}")
        mutants = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for m in mutants:
            where = f"{m.file}:{line_of(m, src) or '?'}"
            print(f"{m.name:28} {where:26} {problems.get(m.name, m.bug)}")
        return 1 if any(m.name in problems for m in mutants) else 0

    import build

    # SIGTERM as an exception: the mutated file is restored and the workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = build.unavailable()
    if reason:
        sys.exit(f"SIMT tier unavailable: {reason}")
    t_start = time.monotonic()
    work = Path(args.work) if args.work else work_dir(src)
    copy = work / "csrc"
    sync_copy(src, copy)
    print(f"mutating a copy of {src} in {copy}", flush=True)
    names = ordered_cases()

    t0 = time.monotonic()
    error = build_copy(copy, args.build_timeout)
    if error:
        sys.exit(f"the unmutated copy does not build: {error}")
    print(f"built the unmutated copy in {time.monotonic() - t0:.0f} s", flush=True)
    timeout = args.timeout
    if not args.no_baseline:
        base = run_tier(copy, names, args.jobs, args.timeout or 3600, work / "run", fail_fast=False)
        if base["status"] != "pass":
            sys.exit(f"the unmutated tier does not pass ({base['status']} in {base['case']}: "
                     f"{base['message']}): mutants would prove nothing")
        print(f"baseline: {base['done']} cases pass in {base['seconds']:.0f} s", flush=True)
        timeout = timeout or max(300.0, 3 * base["seconds"])
    timeout = timeout or 600.0

    rows = []
    for m in mutants:
        row = {"name": m.name, "where": f"{m.file}:{line_of(m, src) or '?'}", "bug": m.bug,
               "seconds": 0.0}
        if m.name in problems:
            row.update(result="pattern missing", detail=problems[m.name])
            rows.append(row)
            print(f"{m.name}: pattern missing: {problems[m.name]}", flush=True)
            continue
        path = copy / m.file
        original = path.read_bytes()
        t0 = time.monotonic()
        try:
            text, _ = mutated_text(m, copy)
            path.write_text(text)
            error = build_copy(copy, args.build_timeout)
            if error:
                row.update(result="does not compile", detail=error)
            else:
                r = run_tier(copy, family_first(names, m), args.jobs, timeout, work / "run")
                kind = {"fail": "caught", "crash": "caught (crash)", "timeout": "caught (timeout)",
                        "pass": "SURVIVED"}[r["status"]]
                detail = (f"{r['case']}: {r['message']}" if r["case"] else r["message"])
                if r["status"] == "pass":
                    detail = f"all {r['done']} cases pass"
                row.update(result=kind, detail=detail, case=r["case"])
        finally:
            path.write_bytes(original)
        row["seconds"] = round(time.monotonic() - t0, 1)
        rows.append(row)
        print(f"{m.name}: {row['result']} ({row['seconds']:.0f} s) {_short(row['detail'], 160)}",
              flush=True)

    print()
    print(table(rows, args.markdown))
    bad = [r for r in rows if not r["result"].startswith("caught")]
    caught = len(rows) - len(bad)
    total = time.monotonic() - t_start
    print(f"\n{caught}/{len(rows)} mutants caught in {total / 60:.1f} min"
          + (f"; not caught: {', '.join(r['name'] for r in bad)}" if bad else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"csrc": str(src), "rows": rows,
                                               "seconds": round(total, 1)}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

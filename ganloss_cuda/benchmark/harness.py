"""The benchmark harness: timing, spread, noise, peak memory, kernel counts, the copy-bandwidth
probe, the correctness gate, the self-check runner and the tables, for any loss family's Suite.
Rule: this module knows no family; it imports torch, ganloss_cuda._ext and _tolerance, never a
loss, a suite or ganloss_cuda.functional / reference. A family's cases, inputs, loss call, floor
bytes and self-checks come in through its Suite (benchmark/<family>.py). The model behind the
numbers is docs/performance.md.

Providers: ``reference`` (the suite's eager reference), ``reference_compiled`` (``torch.compile``
of it, default mode) and ``ganloss`` (the suite's ``ganloss_cuda.functional`` loss). Modes:
``fwd`` (under ``torch.no_grad``) and ``fwd_bwd`` (``loss.backward()``; the input tensors that
require grad have their grads reset to None each step). ganloss computes the gradient inside its
forward when autograd needs it, so ``fwd_bwd`` is the honest headline.

Correctness gate: before it is timed, every provider's loss (and, in ``fwd_bwd``, the gradients
of its inputs) is compared with the suite's reference run in float64 on the same inputs, within
the one tolerance table (ganloss_cuda/_tolerance.py).

Timing (torch.utils.benchmark): for one case and mode every provider is first checked and warmed
up (compiled, for torch.compile), then the providers take turns, round by round (reference,
reference_compiled, ganloss, reference, ...), each round one ``Timer.timeit`` of as many calls as
fill ``round_s``; a row's median and interquartile range (IQR) are those of its rounds' per-call
times (``Measurement.merge``). Timer synchronizes CUDA around each round. A row is noisy when its
IQR is more than NOISY_IQR of its median or when other processes used more than BUSY_SHARE of
the machine's CPU time while it was timed; no speedup is given for a pair with a noisy row.

Floors (GPU only): the suite's floor bytes (the bytes a case and mode must move) / the copy
bandwidth measured in the same run; for a suite with ``floor_flops`` (compute-bound losses, the
Gram family) the floor is the larger of that and the floor FLOPs / the matmul rate measured in
the same process (``matmul_probe``: a square GEMM in the case's dtype under its matmul precision),
and the row says which one binds. On CPU the inputs, reused call after call, largely stay in the
caches, where DRAM copy bandwidth bounds nothing, so CPU rows have no floor; their achieved GB/s
(floor bytes / median) and, with floor FLOPs, TFLOP/s (floor FLOPs / median) are still given.

Launch-bound suites (``graph_replay``, the adversarial family): on a GPU a row's median is the
host wall time per call (Timer synchronizes only at the ends of a round of calls, so a step whose
host dispatch outlasts its kernels is timed by the host), and ``graph_ms`` is the same step
captured in a CUDA graph and replayed: its device time without dispatch.
"""
import contextlib
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch.utils._pytree import tree_leaves, tree_map
from torch.utils.benchmark import Measurement, Timer

from .. import _ext, _tolerance

PROVIDERS = ("reference", "reference_compiled", "ganloss")
MODES = ("fwd", "fwd_bwd")
DTYPE_NAMES = {torch.float64: "fp64", torch.float32: "fp32", torch.float16: "fp16",
               torch.bfloat16: "bf16"}
# Timing effort: interleaved rounds after the warm-up round, seconds of each provider's round.
TIMING = {"full": dict(rounds=15, round_s=0.05), "quick": dict(rounds=5, round_s=0.02)}
# A row is noisy when its IQR exceeds NOISY_IQR of its median (torch.utils.benchmark's "significant
# environmental influence" line; eager rows spread 10-70 % on an idle 2-core VM), or when other
# processes used more than BUSY_SHARE of the machine's CPU time while it was timed (a steady
# slowdown, say OpenMP threads waiting a scheduler slice in every call, has a small IQR).
NOISY_IQR = 0.25
BUSY_SHARE = 0.1


class CaseBase:
    """What the harness reads of a suite's case, a frozen dataclass deriving from this one with
    at least the fields ``op`` (the op it exercises), ``name``, ``dtype`` and ``quick`` (part of
    the --quick subset). A case may override ``dtype_name`` (the rows' dtype column) and
    ``settings`` (torch settings that its every call runs under, checks and timing alike)."""

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    def settings(self):
        """A context manager for the case's torch settings; none by default."""
        return contextlib.nullcontext()

    def group(self, mode: str) -> str:
        return f"{self.op}-{self.name}-{self.dtype_name}-{mode}"


@dataclass(frozen=True)
class SelfCheck:
    """One self-check of the main job: ``run()`` -> (got, want), each {stage: tensor or list of
    tensors}, got from ganloss on the device, want from the float64 reference; the stages named
    in ``values`` (results accumulated in fp32 whatever the dtype: a loss, a Gram) are held to
    LOSS_RTOL, every other one (gradients) to GRAD_RTOL and GRAD_ATOL. ``label`` ends the
    PASS/FAIL line; ``fields`` go into the check's JSON entry."""

    dtype: torch.dtype
    label: str
    fields: Mapping[str, object]
    run: Callable[[], Tuple[dict, dict]]
    values: Tuple[str, ...] = ("loss",)


@dataclass(frozen=True)
class Suite:
    """One loss family's benchmarks and self-checks: all the harness and the main job need.

    ``make_inputs(case, device, generator)`` -> one input set, a tuple of call arguments whose
    tensors that require grad are the ones ``fwd_bwd`` differentiates; ``call(fn, case, inputs)``
    -> the scalar loss of ``fn`` (``reference``, its torch.compile, or ``ganloss``) on them;
    ``floor_bytes(case, mode)`` -> the bytes the step must move; ``floor_flops(case, mode)`` (a
    compute-bound family's; None: bytes only) -> the FLOPs it must do; ``self_checks(device)`` ->
    the SelfChecks of the main job, whose stages ``check_stages`` maps to the ops they exercise;
    ``sanitizer_calls(device)`` runs small calls that reach every kernel path (forward and
    backward, odd sizes, misaligned and empty tensors) for compute-sanitizer and returns how
    many."""

    name: str
    op: str  # the op whose kernel the ganloss rows time (a fallback note when it has none)
    cpu_cases: Tuple[CaseBase, ...]
    gpu_cases: Tuple[CaseBase, ...]
    reference: Callable
    ganloss: Callable
    make_inputs: Callable[[CaseBase, str, torch.Generator], tuple]
    call: Callable[[Callable, CaseBase, tuple], torch.Tensor]
    floor_bytes: Callable[[CaseBase, str], int]
    self_checks: Callable[[str], Iterable[SelfCheck]]
    check_stages: Mapping[str, Tuple[str, ...]]
    sanitizer_calls: Callable[[str], int]
    # Least fwd_bwd speedup of ganloss against each provider on the 2-core CPU CI VM (fp32): the
    # speedup table's "CPU goal" column; empty for none.
    cpu_goal: Mapping[str, float] = field(default_factory=dict)
    floor_flops: Optional[Callable[[CaseBase, str], int]] = None
    # A launch-bound family's: on a GPU its rows also get graph_ms, the step's CUDA-graph replay
    # time (graph_replay_ms), and its speedups the ratio of those (vs_reference_graph).
    graph_replay: bool = False

    def cases_for(self, device: str, quick: bool = False) -> list:
        """The GPU set on 'cuda', the small CPU set on 'cpu'; only the quick ones if quick."""
        cases = self.gpu_cases if device == "cuda" else self.cpu_cases
        return [c for c in cases if c.quick or not quick]


def input_sets(suite: Suite, case: CaseBase, device: str, seed: int = 0) -> list:
    """Input sets of a case: three on a GPU when one fwd_bwd working set (its floor bytes) is
    under 3x the L2 cache (timing rotates over them, so the data comes from memory), else one."""
    n = 1
    if device == "cuda":
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        n = 3 if suite.floor_bytes(case, "fwd_bwd") < 3 * l2 else 1
    gen = torch.Generator(device=device).manual_seed(seed)
    return [suite.make_inputs(case, device, gen) for _ in range(n)]


def grad_leaves(inputs) -> list:
    """The tensors of an input set that require grad: what fwd_bwd differentiates."""
    return [t for t in tree_leaves(inputs) if isinstance(t, torch.Tensor) and t.requires_grad]


def make_step(suite: Suite, fn: Callable, case: CaseBase, mode: str) -> Callable:
    """step(*inputs) -> loss: one forward (``fwd``, no grad) or forward + backward (``fwd_bwd``,
    the grads of the inputs reset to None first)."""

    def fwd(*inputs):
        with torch.no_grad():
            return suite.call(fn, case, inputs)

    def fwd_bwd(*inputs):
        for t in grad_leaves(inputs):
            t.grad = None
        loss = suite.call(fn, case, inputs)
        loss.backward()
        return loss

    return {"fwd": fwd, "fwd_bwd": fwd_bwd}[mode]


def provider_fn(suite: Suite, provider: str) -> Callable:
    """The loss function of a provider. ``reference_compiled`` is a fresh torch.compile after a
    dynamo reset, so each case compiles for its own shapes (no recompile limit, no dynamic
    shapes carried over from another case)."""
    if provider == "reference":
        return suite.reference
    if provider == "ganloss":
        return suite.ganloss
    if provider == "reference_compiled":
        torch._dynamo.reset()
        return torch.compile(suite.reference, dynamic=False)
    raise ValueError(f"unknown provider '{provider}'")


class CorrectnessError(AssertionError):
    """A provider's loss or gradients differ from the float64 reference."""


def float64_reference(suite: Suite, case: CaseBase, inputs) -> Tuple[torch.Tensor, list]:
    """(loss, gradients of the inputs that require grad) of the suite's reference run in float64
    on the same values as inputs: what the correctness gate compares with."""
    wide = tree_map(lambda t: t.detach().double().requires_grad_(t.requires_grad)
                    if isinstance(t, torch.Tensor) else t, inputs)
    loss = suite.call(suite.reference, case, wide)
    loss.backward()
    return loss.detach(), [t.grad for t in grad_leaves(wide)]


def check_against_float64(step: Callable, case: CaseBase, mode: str, inputs,
                          want: Tuple[torch.Tensor, list], label: str):
    """Raise CorrectnessError unless step's loss (and, for fwd_bwd, the gradients of the inputs)
    match want = float64_reference(...) within the tolerance table of the case's dtype."""
    got = step(*inputs).detach()
    pairs = [("loss", "loss", got, want[0])]
    if mode == "fwd_bwd":
        pairs += [(f"grad of input {i}", "grad", t.grad, w)
                  for i, (t, w) in enumerate(zip(grad_leaves(inputs), want[1]))]
    for what, kind, g, w in pairs:
        try:
            _tolerance.assert_close(g, w, case.dtype, kind)
        except AssertionError as e:
            raise CorrectnessError(f"{label}: {what} differs from the float64 reference: "
                                   f"{e}") from None


def prepare(suite: Suite, fn: Callable, case: CaseBase, mode: str, inputs, want,
            label: str) -> Tuple[Callable, float]:
    """(step, seconds of the first call): fn's step, checked against want on inputs (the first
    call, which includes torch.compile's compiling)."""
    step = make_step(suite, fn, case, mode)
    start = time.perf_counter()
    check_against_float64(step, case, mode, inputs, want, label)
    return step, time.perf_counter() - start


def time_interleaved(steps: Dict[str, Callable], sets: list, rounds: int, round_s: float,
                     **timer_args) -> Dict[str, Measurement]:
    """A Measurement per provider whose times are the per-call times of its rounds. First a
    warm-up round: each provider runs one ``blocked_autorange(min_run_time=round_s)``, whose
    median sets how many calls fill round_s. Then ``rounds`` rounds in which each provider in
    turn runs ``Timer.timeit`` of that many calls (after its own few warm-up calls), so a slow
    spell of the machine falls on all providers alike, and the IQR is the spread between rounds.
    Each call takes the next input set; the timers use torch's current thread count (Timer's
    default is 1) and timer_args (say, another ``timer`` clock)."""
    timers = {}
    for provider, step in steps.items():
        timers[provider] = Timer("step(*next(rotation))", num_threads=torch.get_num_threads(),
                                 globals={"step": step, "rotation": itertools.cycle(sets)},
                                 **timer_args)
    calls = {provider: max(1, int(round_s / timer.blocked_autorange(min_run_time=round_s).median))
             for provider, timer in timers.items()}
    per_round = {provider: [] for provider in steps}
    for _ in range(rounds):
        for provider, timer in timers.items():
            per_round[provider].append(timer.timeit(calls[provider]))
    return {provider: Measurement.merge(ms)[0] for provider, ms in per_round.items()}


def _cpu_seconds():
    """(wall seconds, busy CPU seconds of the whole machine, CPU seconds of this process), from
    /proc; None where there is no /proc (not Linux)."""
    try:
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            utime, stime = map(int, f.read().rsplit(")", 1)[1].split()[11:13])
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = sum(cpu) - cpu[3] - cpu[4]  # user nice system idle iowait irq softirq steal
    return time.perf_counter(), busy / tick, (utime + stime) / tick


def others_cpu_share(start) -> Optional[float]:
    """The share of the machine's CPU time (all cores) that other processes (or the hypervisor:
    steal) used since ``start = _cpu_seconds()``; None off Linux."""
    end = _cpu_seconds()
    if start is None or end is None:
        return None
    wall, busy, own = (e - s for e, s in zip(end, start))
    return max(0.0, (busy - own) / (wall * os.cpu_count()))


@contextlib.contextmanager
def _stderr_silenced():
    """fd 2 to /dev/null: the profiler prints two lines per use, whatever KINETO_LOG_LEVEL says."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_bytes(run: Callable) -> int:
    """Peak of the bytes torch's CPU allocator holds during run(), above what it held at the
    start: the running sum of the profiler's memory events (tracemalloc does not see torch's
    allocations, and the RSS high-water mark misses memory that malloc reuses)."""
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            run()
    # The raw allocator events (prof.events() folds allocations into the ops that made them).
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
                     and e.device_type() == torch.autograd.DeviceType.CPU),
                    key=lambda e: e.start_ns())
    held = peak = 0
    for e in events:
        held += e.nbytes()
        peak = max(peak, held)
    return peak


def peak_memory(step: Callable, inputs, device: str) -> int:
    """Peak bytes allocated during one step above those allocated before it, with no .grad
    held at its start: everything the step adds to the inputs, the gradients it leaves in .grad
    included. CUDA: torch.cuda.max_memory_allocated; CPU: _cpu_peak_bytes."""
    for t in grad_leaves(inputs):
        t.grad = None
    if device != "cuda":
        return _cpu_peak_bytes(lambda: step(*inputs))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step(*inputs)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def kernel_counts(suite: Suite, fn: Callable, case: CaseBase, mode: str,
                  inputs) -> Tuple[int, Optional[int]]:
    """(forward, backward) CUDA kernels of one call of fn, counted with torch.profiler (memcpy
    and memset excluded); backward is None in fwd mode."""
    from torch.profiler import ProfilerActivity, profile

    def count(run):
        with _stderr_silenced(), profile(
                activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            out = run()
            torch.cuda.synchronize()
        return out, sum(1 for e in prof.events()
                        if e.device_type == torch.autograd.DeviceType.CUDA
                        and not e.name.startswith(("Memcpy", "Memset")))

    def forward():
        return suite.call(fn, case, inputs)

    if mode == "fwd":
        with torch.no_grad():
            return count(forward)[1], None
    for t in grad_leaves(inputs):
        t.grad = None
    loss, fwd = count(forward)
    return fwd, count(loss.backward)[1]


def graph_replay_ms(step: Callable, inputs, round_s: float) -> float:
    """Milliseconds per replay of one step captured in a CUDA graph: the device time of its
    kernels without the host's dispatch (launch-bound steps: docs/performance.md §7). Warmed up
    on a side stream as torch.cuda.graphs requires, captured once, replayed for about round_s
    after a warm-up (Timer synchronizes at the ends)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            step(*inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(*inputs)
    timer = Timer("graph.replay()", globals={"graph": graph})
    timer.blocked_autorange(min_run_time=round_s)
    return timer.blocked_autorange(min_run_time=round_s).median * 1e3


def bandwidth_probe(device: str) -> dict:
    """Copy bandwidth, GB/s counting bytes read + written: dst.copy_(src) of 1 GiB on a GPU,
    256 MiB on CPU (beyond the last-level cache), after a warm-up; the denominator of floor_ms."""
    nbytes = 2 ** 30 if device == "cuda" else 2 ** 28
    src = torch.empty(nbytes // 4, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    timer = Timer("dst.copy_(src)", globals={"src": src, "dst": dst},
                  num_threads=torch.get_num_threads())
    timer.blocked_autorange(min_run_time=0.2)
    m = timer.blocked_autorange(min_run_time=1.0)
    return {"device": device, "bytes": nbytes, "median_ms": m.median * 1e3,
            "iqr_ms": m.iqr * 1e3, "gbps": 2 * nbytes / m.median / 1e9}


_MATMUL_PROBES = {}  # (device, dtype, float32 matmul precision) -> matmul_probe's result


def matmul_probe(device: str, dtype: torch.dtype, log: Callable = print) -> dict:
    """Matmul rate, TFLOP/s (2 n^3 per product): torch.mm of two n x n matrices in dtype (n =
    8192 on a GPU, 2048 on CPU) under the current torch.get_float32_matmul_precision() (fp32:
    exact FFMA at "highest", TF32 tensor cores at "high"), after a warm-up; the denominator of a
    FLOP floor. Measured once per (device, dtype, precision) in a process, and logged then."""
    key = (device, dtype, torch.get_float32_matmul_precision())
    if key not in _MATMUL_PROBES:
        n = 8192 if device == "cuda" else 2048
        a = torch.randn(n, n, device=device, dtype=dtype)  # not constant: power draw, clocks
        out = torch.empty_like(a)
        timer = Timer("torch.mm(a, a, out=out)", globals={"torch": torch, "a": a, "out": out},
                      num_threads=torch.get_num_threads())
        timer.blocked_autorange(min_run_time=0.2)
        m = timer.blocked_autorange(min_run_time=1.0)
        _MATMUL_PROBES[key] = {"device": device, "dtype": DTYPE_NAMES[dtype], "precision": key[2],
                               "n": n, "median_ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3,
                               "tflops": 2 * n ** 3 / m.median / 1e12}
        log(f"  {device} {DTYPE_NAMES[dtype]} matmul (precision {key[2]}): "
            f"{_MATMUL_PROBES[key]['tflops']:.1f} TFLOP/s")
    return _MATMUL_PROBES[key]


def floors(suite: Suite, case: CaseBase, mode: str, device: str, probe_gbps: float,
           log: Callable = print) -> dict:
    """The floor fields of a row: floor_bytes and floor_flops (None for a suite without FLOP
    floors); on a GPU also floor_ms = max(bytes / copy bandwidth, FLOPs / matmul rate of the
    case's dtype, measured under the case's settings), the matmul rate (peak_tflops) and which
    of the two binds (bound: "bytes" or "flops")."""
    nbytes = suite.floor_bytes(case, mode)
    flops = suite.floor_flops(case, mode) if suite.floor_flops else None
    out = {"floor_bytes": nbytes, "floor_flops": flops, "floor_ms": None, "peak_tflops": None,
           "bound": None}
    if device != "cuda":
        return out
    bytes_ms = nbytes / probe_gbps / 1e6
    out.update(floor_ms=bytes_ms, bound="bytes")
    if flops is not None:
        out["peak_tflops"] = matmul_probe(device, case.dtype, log)["tflops"]
        flops_ms = flops / out["peak_tflops"] / 1e9
        if flops_ms > bytes_ms:
            out.update(floor_ms=flops_ms, bound="flops")
    return out


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"


def run_case(suite: Suite, case: CaseBase, device: str, probe_gbps: float, quick: bool = False,
             providers=PROVIDERS, modes=MODES, log: Callable = print) -> List[dict]:
    """Rows (the ``benchmarks`` fields of docs/gpu-results.md) for every provider and mode of
    one case, all under the case's settings; per mode, the providers are checked against the
    float64 reference, then timed interleaved (time_interleaved), then their peak memory and
    (CUDA) kernel counts are taken. A wrong loss or gradient of reference or ganloss raises
    CorrectnessError; any failure of reference_compiled (say, no C compiler for inductor) is
    recorded in its row instead."""
    with case.settings():
        return _run_case(suite, case, device, probe_gbps, quick, providers, modes, log)


def _run_case(suite, case, device, probe_gbps, quick, providers, modes, log) -> List[dict]:
    sets = input_sets(suite, case, device)
    want = float64_reference(suite, case, sets[0])
    fallback = provider_note(suite, device)
    fns = {provider: provider_fn(suite, provider) for provider in providers}
    rows = []
    for mode in modes:
        floor = floors(suite, case, mode, device, probe_gbps, log)
        mode_rows, steps = {}, {}
        for provider in providers:
            mode_rows[provider] = {
                "op": case.op, "case": case.name, "dtype": case.dtype_name, "mode": mode,
                "provider": provider, "device": device, "median_ms": None, "iqr_ms": None,
                "others_cpu": None, "noisy": None, **floor, "achieved_gbps": None,
                "achieved_tflops": None, "peak_mem_bytes": None, "kernels_fwd": None,
                "kernels_bwd": None, "first_call_s": None,
                "note": fallback if provider == "ganloss" else None, "error": None,
                "cpu_goal": dict(suite.cpu_goal) if provider == "ganloss" else None}
            if suite.graph_replay and device == "cuda":
                mode_rows[provider].update(graph_ms=None, graph_error=None)
            try:
                steps[provider], mode_rows[provider]["first_call_s"] = prepare(
                    suite, fns[provider], case, mode, sets[0], want,
                    f"{provider} {case.group(mode)}")
            except Exception as e:
                if provider != "reference_compiled":
                    raise
                mode_rows[provider]["error"] = _error(e)
        start = _cpu_seconds()
        effort = TIMING["quick" if quick else "full"]
        timed = time_interleaved(steps, sets, **effort)
        others = others_cpu_share(start)
        for provider, m in timed.items():
            row = mode_rows[provider]
            row.update(median_ms=m.median * 1e3, iqr_ms=m.iqr * 1e3, others_cpu=others,
                       noisy=not m.meets_confidence(NOISY_IQR) or (others or 0) > BUSY_SHARE,
                       achieved_gbps=floor["floor_bytes"] / m.median / 1e9,
                       achieved_tflops=None if floor["floor_flops"] is None
                       else floor["floor_flops"] / m.median / 1e12,
                       peak_mem_bytes=peak_memory(steps[provider], sets[0], device))
            if device == "cuda":
                row["kernels_fwd"], row["kernels_bwd"] = kernel_counts(
                    suite, fns[provider], case, mode, sets[0])
            if "graph_ms" in row:
                try:
                    row["graph_ms"] = graph_replay_ms(steps[provider], sets[0],
                                                      effort["round_s"])
                except Exception as e:  # a provider that cannot be captured: recorded
                    row["graph_error"] = _error(e)
        log(f"  {device} {case.group(mode)}: " + ", ".join(
            f"{p} " + (r["error"] or f"{r['median_ms']:.3f} ms (IQR {r['iqr_ms']:.3f})")
            for p, r in mode_rows.items())
            + ("" if others is None else f"; other processes {others:.0%} of the CPUs"))
        rows += mode_rows.values()
    return rows


def provider_note(suite: Suite, device: str) -> Optional[str]:
    """Why ganloss rows of suite on this device measure the reference instead of the kernels,
    or None."""
    if _ext.has_kernel(suite.op, device):
        return None
    return f"no ganloss {device} kernel ({_ext.load_error or 'not built'}): reference fallback"


def speedups(rows: List[dict]) -> List[dict]:
    """Per (device, op, case, dtype, mode): the medians of reference and reference_compiled
    divided by ganloss's (> 1: ganloss is faster). None where a row has no time or where either
    row of the pair is noisy; ``noisy`` lists the group's noisy providers."""
    groups = {}
    for r in rows:
        key = (r["device"], r["op"], r["case"], r["dtype"], r["mode"])
        groups.setdefault(key, {})[r["provider"]] = r
    out = []
    for (device, op, case, dtype, mode), group in groups.items():
        ours = group.get("ganloss")
        if not ours or ours["median_ms"] is None:
            continue
        entry = {"device": device, "op": op, "case": case, "dtype": dtype, "mode": mode,
                 "noisy": sorted(p for p, r in group.items() if r["noisy"]),
                 "cpu_goal": ours.get("cpu_goal")}
        for provider in ("reference", "reference_compiled"):
            theirs = group.get(provider)
            fair = (theirs is not None and theirs["median_ms"] is not None
                    and not theirs["noisy"] and not ours["noisy"])
            entry[f"vs_{provider}"] = theirs["median_ms"] / ours["median_ms"] if fair else None
        if "graph_ms" in ours:
            theirs = group.get("reference", {})
            entry["vs_reference_graph"] = (theirs["graph_ms"] / ours["graph_ms"]
                                           if theirs.get("graph_ms") and ours["graph_ms"]
                                           else None)
        out.append(entry)
    return out


def run_set(suites: Sequence[Suite], device: str, quick: bool = False,
            log: Callable = print) -> dict:
    """Bandwidth probe, then every case of each suite's set for device: {"bandwidth_probe",
    "benchmarks", "speedups"}."""
    probe = bandwidth_probe(device)
    log(f"  {device} copy bandwidth: {probe['gbps']:.1f} GB/s")
    rows = []
    for suite in suites:
        for case in suite.cases_for(device, quick):
            rows += run_case(suite, case, device, probe["gbps"], quick, log=log)
    return {"bandwidth_probe": probe, "benchmarks": rows, "speedups": speedups(rows)}


def run_self_checks(suite: Suite, device: str, log: Callable = print) -> List[dict]:
    """Every SelfCheck of suite on device, one PASS/FAIL line each. A result is {"family",
    "device", "dtype", **fields, "failed": [stages], "error": the first error}; a crash fails
    every stage of check_stages."""
    all_stages = list(dict.fromkeys(s for stages in suite.check_stages.values() for s in stages))
    results = []
    for c in suite.self_checks(device):
        result = {"family": suite.name, "device": device,
                  "dtype": str(c.dtype).replace("torch.", ""), **c.fields, "failed": [],
                  "error": None}
        try:
            got, want = c.run()
        except Exception as e:
            result.update(failed=all_stages,
                          error=f"{type(e).__name__}: {' '.join(str(e).split())}")
        else:
            for stage, g in got.items():
                w = want[stage]
                for gi, wi in zip(g if isinstance(g, list) else [g],
                                  w if isinstance(w, list) else [w]):
                    try:
                        _tolerance.assert_close(gi, wi, c.dtype,
                                                "loss" if stage in c.values else "grad")
                    except AssertionError as e:
                        result["failed"].append(stage)
                        result["error"] = (result["error"]
                                           or f"{stage}: {' '.join(str(e).split())}")
                        break
        log(f"{'FAIL' if result['failed'] else 'PASS'}  {device:4s} {result['dtype']:8s} "
            f"{c.label}" + (f"  {result['error']}" if result["error"] else ""))
        results.append(result)
    return results


def _table(header: List[str], lines: List[list]) -> str:
    cells = [header] + [["-" if v is None else v for v in line] for line in lines]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(str(v).rjust(w) if i else str(v).ljust(w)
                               for i, (v, w) in enumerate(zip(c, widths))).rstrip()
                     for c in cells)


def _f(value, fmt):
    return None if value is None else format(value, fmt)


def _ratio(s: dict, provider: str) -> str:
    if s[f"vs_{provider}"] is not None:
        return f"{s[f'vs_{provider}']:.2f}x"
    return "noisy" if {"ganloss", provider} & set(s["noisy"]) else "-"


def _cpu_goal(s: dict) -> Optional[str]:
    """met / missed / unknown (a speedup is missing) for CPU fwd_bwd against the suite's goal,
    else None."""
    goal = s.get("cpu_goal")
    if s["device"] != "cpu" or s["mode"] != "fwd_bwd" or not goal:
        return None
    ratios = {p: s[f"vs_{p}"] for p in goal}
    if None in ratios.values():
        return "unknown"
    return "met" if all(ratios[p] >= least for p, least in goal.items()) else "missed"


def format_table(rows: List[dict], speedup_rows: List[dict]) -> str:
    """Plain-text tables: one line per row (median and IQR in ms, IQR in % of the median, the
    CPU share other processes used meanwhile, noisy or not, floor, achieved GB/s, peak MiB of one
    step, CUDA kernels fwd/bwd; with FLOP floors in any row, also which floor binds and the
    achieved TFLOP/s), then ganloss's speedups
    ("noisy" where a row of the pair is noisy); then what the reader must know: noise, CPU
    floors, errors and notes."""
    flops = any(r["floor_flops"] is not None for r in rows)
    graphs = any("graph_ms" in r for r in rows)
    lines = [[f"{r['device']} {r['case']}", r["dtype"], r["mode"], r["provider"],
              _f(r["median_ms"], ".3f"), _f(r["iqr_ms"], ".3f"),
              None if r["median_ms"] is None else f"{100 * r['iqr_ms'] / r['median_ms']:.0f}%",
              _f(r["others_cpu"], ".0%"), "noisy" if r["noisy"] else "",
              _f(r["floor_ms"], ".3f")] + ([r["bound"]] if flops else [])
             + [_f(r["achieved_gbps"], ".1f")]
             + ([_f(r["achieved_tflops"], ".3g")] if flops else [])
             + [_f(r["peak_mem_bytes"] and r["peak_mem_bytes"] / 2 ** 20, ".1f"),
                None if r["kernels_fwd"] is None
                else f"{r['kernels_fwd']}/{_f(r['kernels_bwd'], 'd')}"]
             + ([_f(r.get("graph_ms"), ".4f")] if graphs else [])
             for r in rows]
    out = [_table(["case", "dtype", "mode", "provider", "median_ms", "iqr_ms", "IQR", "others",
                   "", "floor_ms"] + (["bound"] if flops else []) + ["GB/s"]
                  + (["TFLOP/s"] if flops else []) + ["peak_MiB", "kernels"]
                  + (["graph_ms"] if graphs else []), lines)]
    lines = [[f"{s['device']} {s['case']}", s["dtype"], s["mode"], _ratio(s, "reference"),
              _ratio(s, "reference_compiled"), _cpu_goal(s)]
             + ([_f(s.get("vs_reference_graph"), ".2f")] if graphs else [])
             for s in speedup_rows]
    out += ["", _table(["ganloss speedup", "dtype", "mode", "vs reference",
                        "vs reference_compiled", "CPU goal"]
                       + (["graph vs reference"] if graphs else []), lines), ""]
    timed = [r for r in rows if r["median_ms"] is not None]
    noisy = [r for r in timed if r["noisy"]]
    if noisy:
        out.append(f"NOISY: {len(noisy)} of {len(timed)} rows have an IQR above "
                   f"{NOISY_IQR:.0%} of their median, or other processes used more than "
                   f"{BUSY_SHARE:.0%} of the CPUs while they were timed (`others`); their "
                   "speedups are not given. Rerun (on a quiet machine if `others` is high).")
    if any(r["device"] == "cpu" for r in rows):
        out.append("cpu: no floors (the inputs largely stay in the caches, where the DRAM copy "
                   "bandwidth bounds nothing); GB/s = model bytes / median"
                   + (", TFLOP/s = model FLOPs / median." if flops else "."))
    out += sorted({f"{r['provider']}: {r['error'] or r['note']}" for r in rows
                   if r["error"] or r["note"]})
    out += sorted({f"{r['provider']} graph capture: {r['graph_error']}" for r in rows
                   if r.get("graph_error")})
    return "\n".join(out)

"""Benchmark cases, timing and correctness gates: the one home of both `python -m ganloss_cuda`
and benchmarks/bench_feature.py (pytest-benchmark).

Protocol (shared/docs/performance-model.md §1.2, §8). Providers: ``reference`` (eager
``reference.feature_loss``), ``reference_compiled`` (``torch.compile`` of it, default mode,
compiled and warmed up before timing) and ``ganloss`` (``functional.feature_loss``). Modes:
``fwd`` (under ``torch.no_grad``) and ``fwd_bwd`` (inputs require grad, targets are detached,
``loss.backward()``, grads reset to None each step). ganloss computes the gradient inside its
forward when autograd needs it, so ``fwd_bwd`` is the honest headline. The bytes floor reads x
and y once (``fwd``) and also writes dx once (``fwd_bwd``); achieved GB/s = floor bytes / median
time, and floor_ms = floor bytes / the copy bandwidth measured in the same run. Times are
medians with p20/p80: CUDA events on a GPU, with inputs rotated over 3 sets when they would sit
in L2; ``time.perf_counter`` on CPU.
"""
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch

from . import _ext, functional, reference

PROVIDERS = ("reference", "reference_compiled", "ganloss")
MODES = ("fwd", "fwd_bwd")
PASSES = {"fwd": 2, "fwd_bwd": 3}  # tensor passes of the floor: read x, read y (, write dx)
RTOL = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2}
DTYPE_NAMES = {torch.float64: "fp64", torch.float32: "fp32", torch.float16: "fp16",
               torch.bfloat16: "bf16"}
# Timing effort: warm-up calls, most timed calls, seconds per measurement (fewer calls when slow).
TIMING = {"full": dict(warmup=3, reps=100, seconds=2.0),
          "quick": dict(warmup=1, reps=10, seconds=0.3)}
MIN_REPS = 5


@dataclass(frozen=True)
class Case:
    """One input of ``op``: the layer shapes (dim 0 = batch), per-layer weights and dtype."""

    op: str
    name: str
    shapes: Tuple[Tuple[int, ...], ...]
    weights: Tuple[float, ...]
    dtype: torch.dtype = torch.float32
    criterion: str = "l1"
    quick: bool = False  # part of the --quick subset

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def floor_bytes(self, mode: str) -> int:
        return PASSES[mode] * self.numel * self.dtype.itemsize

    def group(self, mode: str) -> str:
        return f"{self.op}-{self.name}-{self.dtype_name}-{mode}"


def vgg19_shapes(batch: int, size: int):
    """VGG19 relu1_1 .. relu5_1 for a batch of size x size images."""
    return tuple((batch, c, size >> i, size >> i) for i, c in enumerate((64, 128, 256, 512, 512)))


def pix2pixhd_shapes(batch: int, height: int, width: int, num_d: int = 3, n_layers: int = 3,
                     ndf: int = 64):
    """Intermediate features of pix2pixHD's multi-scale NLayerDiscriminator (logits excluded):
    convs k=4, pad=2, strides 2 x n_layers then 1; AvgPool(3, 2, 1) between scales (§7c)."""
    shapes = []
    for _ in range(num_d):
        h, w = height, width
        for i in range(n_layers + 1):
            stride = 2 if i < n_layers else 1
            h, w = h // stride + 1, w // stride + 1
            shapes.append((batch, ndf * min(2 ** i, 8), h, w))
        height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    return tuple(shapes)


VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # pix2pixHD / SPADE VGGLoss
# pix2pixHD feature matching: (1 / num_D) * (4 / (n_layers_D + 1)) * lambda_feat, num_D = 3
FM_WEIGHT = (1 / 3) * (4 / (3 + 1)) * 10.0

CPU_CASES = (
    Case("feature_loss", "pixel-b16-3x128x128", ((16, 3, 128, 128),), (1.0,), quick=True),
    Case("feature_loss", "vgg19-b2-128x128", vgg19_shapes(2, 128), VGG_WEIGHTS),
    Case("feature_loss", "fm3x4-b1-128x256", pix2pixhd_shapes(1, 128, 256), (FM_WEIGHT,) * 12,
         quick=True),
)
GPU_CASES = (
    Case("feature_loss", "vgg19-b16-256x256", vgg19_shapes(16, 256), VGG_WEIGHTS),
    Case("feature_loss", "vgg19-b16-256x256", vgg19_shapes(16, 256), VGG_WEIGHTS, torch.bfloat16),
    Case("feature_loss", "fm3x4-b1-512x1024", pix2pixhd_shapes(1, 512, 1024), (FM_WEIGHT,) * 12,
         quick=True),
    Case("feature_loss", "fm3x4-b4-512x1024", pix2pixhd_shapes(4, 512, 1024), (FM_WEIGHT,) * 12),
)


def cases_for(device: str, quick: bool = False) -> List[Case]:
    """The GPU set on 'cuda', the small CPU set on 'cpu'; only the quick ones if quick."""
    cases = GPU_CASES if device == "cuda" else CPU_CASES
    return [c for c in cases if c.quick or not quick]


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def input_sets(case: Case, device: str, seed: int = 0) -> list:
    """[(xs, ys)]: inputs require grad, targets do not. Three sets on a GPU when one fwd_bwd
    working set is under 3x the L2 cache (timing rotates over them), else one."""
    n = 1
    if device == "cuda":
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        n = 3 if case.floor_bytes("fwd_bwd") < 3 * l2 else 1
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=gen, device=device, dtype=case.dtype)

    return [([randn(s).requires_grad_() for s in case.shapes], [randn(s) for s in case.shapes])
            for _ in range(n)]


def provider_fn(provider: str) -> Callable:
    """The loss function of a provider. ``reference_compiled`` is a fresh torch.compile after a
    dynamo reset, so each case compiles for its own shapes (no recompile limit, no dynamic
    shapes carried over from another case)."""
    if provider == "reference":
        return reference.feature_loss
    if provider == "ganloss":
        return functional.feature_loss
    if provider == "reference_compiled":
        torch._dynamo.reset()
        return torch.compile(reference.feature_loss, dynamic=False)
    raise ValueError(f"unknown provider '{provider}'")


def make_step(fn: Callable, case: Case, mode: str) -> Callable:
    """step(xs, ys) -> loss: one forward (``fwd``, no grad) or forward + backward (``fwd_bwd``)."""
    weights = list(case.weights)

    def fwd(xs, ys):
        with torch.no_grad():
            return fn(xs, ys, weights, case.criterion)

    def fwd_bwd(xs, ys):
        for x in xs:
            x.grad = None
        loss = fn(xs, ys, weights, case.criterion)
        loss.backward()
        return loss

    return {"fwd": fwd, "fwd_bwd": fwd_bwd}[mode]


class CorrectnessError(AssertionError):
    """A provider's loss or gradients differ from the eager reference."""


def check(step: Callable, case: Case, mode: str, xs, ys, label: str):
    """Raise CorrectnessError unless step's loss (and, for fwd_bwd, the input gradients) match
    the eager reference on (xs, ys) within RTOL of the dtype (gradients: atol = rtol * max)."""
    ref_step = make_step(reference.feature_loss, case, mode)
    want = ref_step(xs, ys).detach()
    want_grads = [x.grad for x in xs] if mode == "fwd_bwd" else []
    got = step(xs, ys).detach()
    got_grads = [x.grad for x in xs] if mode == "fwd_bwd" else []
    rtol = RTOL[case.dtype]
    pairs = [("loss", got, want, 0.0)] + [
        (f"grad of inputs[{i}]", g, w, rtol * w.abs().max().item())
        for i, (g, w) in enumerate(zip(got_grads, want_grads))]
    for what, g, w, atol in pairs:
        try:
            torch.testing.assert_close(g, w, rtol=rtol, atol=atol)
        except AssertionError as e:
            raise CorrectnessError(f"{label}: {what} differs from the reference: {e}") from None


def prepare(provider: str, case: Case, mode: str, xs, ys) -> Tuple[Callable, Callable, float]:
    """(fn, step, seconds of the first call): the provider's loss function and step, checked
    against the reference on (xs, ys) and called once more, so torch.compile has compiled and
    warmed up."""
    fn = provider_fn(provider)
    step = make_step(fn, case, mode)
    start = time.perf_counter()
    check(step, case, mode, xs, ys, f"{provider} {case.group(mode)}")
    first = time.perf_counter() - start
    step(xs, ys)
    return fn, step, first


def measure(step: Callable, sets: list, device: str, warmup: int, reps: int,
            seconds: float) -> List[float]:
    """Milliseconds of each timed call, rotating over the input sets: CUDA events on a GPU,
    time.perf_counter on CPU. The number of calls is cut to fit ``seconds`` (at least
    MIN_REPS), judged from the warm-up calls."""
    sync(device)
    start = time.perf_counter()
    for i in range(warmup):
        step(*sets[i % len(sets)])
    sync(device)
    per_call = (time.perf_counter() - start) / max(warmup, 1)
    reps = max(MIN_REPS, min(reps, int(seconds / max(per_call, 1e-9))))
    if device == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(reps)]
        for i, (begin, end) in enumerate(events):
            begin.record()
            step(*sets[i % len(sets)])
            end.record()
        torch.cuda.synchronize()
        return [begin.elapsed_time(end) for begin, end in events]
    times = []
    for i in range(reps):
        start = time.perf_counter()
        step(*sets[i % len(sets)])
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summarize(times: List[float]) -> dict:
    """median, p20 and p80 of a list of milliseconds."""
    q = statistics.quantiles(times, n=10, method="inclusive")
    return {"median_ms": statistics.median(times), "p20_ms": q[1], "p80_ms": q[7]}


def peak_memory(step: Callable, xs, ys, device: str) -> Optional[int]:
    """torch.cuda.max_memory_allocated over one step (inputs included); None on CPU."""
    if device != "cuda":
        return None
    for x in xs:
        x.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step(xs, ys)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def kernel_counts(fn: Callable, case: Case, mode: str, xs, ys) -> Tuple[int, Optional[int]]:
    """(forward, backward) CUDA kernels of one call of fn, counted with torch.profiler (memcpy
    and memset excluded); backward is None in fwd mode."""
    from torch.profiler import ProfilerActivity, profile

    def count(run):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            out = run()
            torch.cuda.synchronize()
        return out, sum(1 for e in prof.events()
                        if e.device_type == torch.autograd.DeviceType.CUDA
                        and not e.name.startswith(("Memcpy", "Memset")))

    def forward():
        return fn(xs, ys, list(case.weights), case.criterion)

    if mode == "fwd":
        with torch.no_grad():
            return count(forward)[1], None
    for x in xs:
        x.grad = None
    loss, fwd = count(forward)
    return fwd, count(loss.backward)[1]


def bandwidth_probe(device: str) -> dict:
    """Copy bandwidth, GB/s counting bytes read + written: dst.copy_(src) of 1 GiB on a GPU,
    256 MiB on CPU; the denominator of floor_ms."""
    nbytes = 2 ** 30 if device == "cuda" else 2 ** 28
    src = torch.empty(nbytes // 4, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    times = measure(lambda s, d: d.copy_(s), [(src, dst)], device, warmup=3, reps=30, seconds=1.0)
    median = statistics.median(times)
    return {"device": device, "bytes": nbytes, "median_ms": median,
            "gbps": 2 * nbytes / (median * 1e-3) / 1e9}


def run_case(case: Case, device: str, probe_gbps: float, quick: bool = False,
             providers=PROVIDERS, modes=MODES, log: Callable = print) -> List[dict]:
    """Rows (the ``benchmarks`` fields of shared/docs/gpu-results.md, plus device, floor_bytes,
    kernels_fwd/kernels_bwd (CUDA), first_call_s, note and error) for every provider and mode
    of one case. A wrong loss or gradient raises CorrectnessError; any failure of
    reference_compiled (say, no C compiler for inductor) is recorded in its row instead."""
    sets = input_sets(case, device)
    timing = TIMING["quick" if quick else "full"]
    fallback = provider_note(device)
    rows = []
    for provider in providers:
        for mode in modes:
            floor = case.floor_bytes(mode)
            row = {"op": case.op, "case": case.name, "dtype": case.dtype_name, "mode": mode,
                   "provider": provider, "device": device, "median_ms": None, "p20_ms": None,
                   "p80_ms": None, "floor_bytes": floor, "floor_ms": floor / probe_gbps / 1e6,
                   "achieved_gbps": None, "peak_mem_bytes": None, "kernels_fwd": None,
                   "kernels_bwd": None, "first_call_s": None,
                   "note": fallback if provider == "ganloss" else None, "error": None}
            try:
                fn, step, row["first_call_s"] = prepare(provider, case, mode, *sets[0])
                row.update(summarize(measure(step, sets, device, **timing)))
                row["achieved_gbps"] = floor / row["median_ms"] / 1e6
                row["peak_mem_bytes"] = peak_memory(step, *sets[0], device)
                if device == "cuda":
                    row["kernels_fwd"], row["kernels_bwd"] = kernel_counts(fn, case, mode, *sets[0])
            except Exception as e:
                if provider != "reference_compiled":
                    raise
                row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
            log(f"  {device} {case.group(mode)} {provider}: "
                + (row["error"] or f"{row['median_ms']:.3f} ms"))
            rows.append(row)
    return rows


def provider_note(device: str) -> Optional[str]:
    """Why ganloss rows on this device measure the reference instead of the kernels, or None."""
    if _ext.has_kernel("feature_loss", device):
        return None
    return f"no ganloss {device} kernel ({_ext.load_error or 'not built'}): reference fallback"


def speedups(rows: List[dict]) -> List[dict]:
    """Per (device, op, case, dtype, mode): medians of reference and reference_compiled divided
    by the median of ganloss (> 1: ganloss is faster); None where a provider has no time."""
    medians = {}
    for r in rows:
        key = (r["device"], r["op"], r["case"], r["dtype"], r["mode"])
        medians.setdefault(key, {})[r["provider"]] = r["median_ms"]
    out = []
    for (device, op, case, dtype, mode), m in medians.items():
        ours = m.get("ganloss")
        if not ours:
            continue
        ratio = {f"vs_{p}": (m[p] / ours if m.get(p) else None)
                 for p in ("reference", "reference_compiled")}
        out.append({"device": device, "op": op, "case": case, "dtype": dtype, "mode": mode,
                    **ratio})
    return out


def run_set(device: str, quick: bool = False, log: Callable = print) -> dict:
    """Bandwidth probe, then every case of the device's set: {"bandwidth_probe", "benchmarks",
    "speedups"}."""
    probe = bandwidth_probe(device)
    log(f"  {device} copy bandwidth: {probe['gbps']:.1f} GB/s")
    rows = []
    for case in cases_for(device, quick):
        rows += run_case(case, device, probe["gbps"], quick, log=log)
    return {"bandwidth_probe": probe, "benchmarks": rows, "speedups": speedups(rows)}


def _table(header: List[str], lines: List[list]) -> str:
    cells = [header] + [["-" if v is None else v for v in line] for line in lines]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(str(v).rjust(w) if i else str(v).ljust(w)
                               for i, (v, w) in enumerate(zip(c, widths))).rstrip()
                     for c in cells)


def _f(value, fmt):
    return None if value is None else format(value, fmt)


def format_table(rows: List[dict], speedup_rows: List[dict]) -> str:
    """Plain-text tables: one line per row (times in ms, achieved GB/s, peak MiB, CUDA kernels
    fwd/bwd), then ganloss's speedups; errors and notes below."""
    lines = [[f"{r['device']} {r['case']}", r["dtype"], r["mode"], r["provider"],
              _f(r["median_ms"], ".3f"), _f(r["p20_ms"], ".3f"), _f(r["p80_ms"], ".3f"),
              _f(r["floor_ms"], ".3f"), _f(r["achieved_gbps"], ".1f"),
              _f(r["peak_mem_bytes"] and r["peak_mem_bytes"] / 2 ** 20, ".0f"),
              None if r["kernels_fwd"] is None
              else f"{r['kernels_fwd']}/{_f(r['kernels_bwd'], 'd')}"]
             for r in rows]
    out = [_table(["case", "dtype", "mode", "provider", "median_ms", "p20_ms", "p80_ms",
                   "floor_ms", "GB/s", "peak_MiB", "kernels"], lines)]
    lines = [[f"{s['device']} {s['case']}", s["dtype"], s["mode"],
              _f(s["vs_reference"], ".2f"), _f(s["vs_reference_compiled"], ".2f")]
             for s in speedup_rows]
    out += ["", _table(["ganloss speedup", "dtype", "mode", "vs reference",
                        "vs reference_compiled"], lines)]
    out += sorted({f"{r['provider']}: {r['error'] or r['note']}" for r in rows
                   if r["error"] or r["note"]})
    return "\n".join(out)

"""Static checks of the compiled CUDA kernels, read without a GPU: ptxas -v (registers, spills,
stack) and the SASS of every kernel (cuobjdump -xelf, then nvdisasm, which names the functions a
CALL reaches), for sm_80 and sm_90. Writes docs/sass-report.md; tests/test_nvcc.py runs the same
checks on its own nvcc objects and checks that the committed report matches csrc/.

    python tools/sass_report.py            # compile csrc/**/*.cu, write docs/sass-report.md
    python tools/sass_report.py --check    # exit 1 when the committed report's stamp is stale

cuobjdump and nvdisasm come from the PyPI packages nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm
(the `test` extra) when the CUDA toolkit has none.

The checks (check_function):
- no local memory: no LDL/STL instruction (ptxas: 0 bytes stack frame, spill stores, spill loads);
- every streaming loop (an innermost loop with a 16-byte global load) issues at least
  MIN_LOADS_IN_FLIGHT 16-byte loads before its first global store, so they are in flight together;
- no 64-bit integer division: no CALL to nvcc's __cuda_sm20_{div,rem}_{s,u}64 routines.

The tiled GEMM kernels (cuda/gram.cu) stage tiles into shared memory between barriers; their
main loops hold the staging and mma loops, so they are not innermost and the streaming-loop rule
does not apply to them. Their engine is checked instead (tests/test_nvcc.py): tensor-core
instructions (HMMA, counted per kernel here) in the fp16/bf16/tf32 instantiations, none in the
exact fp32 and fp64 FFMA ones.
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
REPORT = ROOT / "docs" / "sass-report.md"
ARCHS = ("sm_80", "sm_90")
MIN_LOADS_IN_FLIGHT = 4
# What torch's extension build gives nvcc for code generation (torch's no-implicit-half defines,
# -O3, C++17), for both archs, with the ptxas report.
NVCC_FLAGS = ["-c", "-std=c++17", "-O3", "--expt-relaxed-constexpr",
              "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
              "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
              *[f for a in ARCHS for f in ("-gencode", f"arch=compute_{a[3:]},code={a}")],
              "-Xptxas", "-v"]
DIV64 = re.compile(r"__cuda_sm\d+_(div|rem)_[su]64")


# ------------------------------------------------------------------------------------------------
# Tools.

def find_tool(name):
    """`name` on PATH, else in a pip-installed NVIDIA package (nvidia/cu13/bin, nvidia/*/bin of
    any site-packages), else None."""
    found = shutil.which(name)
    if found:
        return found
    sites = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path}
    for site in sorted(s for s in sites if s):
        for candidate in sorted(Path(site).glob(f"nvidia/*/bin/{name}")):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def nvcc_path():
    from torch.utils.cpp_extension import CUDA_HOME

    for home in (CUDA_HOME, os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def disassemble(obj, workdir):
    """{arch: nvdisasm text} of the cubins in the object file `obj`."""
    cuobjdump, nvdisasm = find_tool("cuobjdump"), find_tool("nvdisasm")
    if not (cuobjdump and nvdisasm):
        raise FileNotFoundError("cuobjdump and nvdisasm are needed (pip install "
                                "nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([cuobjdump, "-xelf", "all", str(Path(obj).resolve())], cwd=workdir, check=True,
                   capture_output=True)
    out = {}
    for cubin in sorted(workdir.glob("*.cubin")):
        arch = re.search(r"\.(sm_\d+a?)\.cubin$", cubin.name).group(1)
        out[arch] = subprocess.run([nvdisasm, "-c", str(cubin)], check=True, capture_output=True,
                                   text=True).stdout
    return out


# ------------------------------------------------------------------------------------------------
# ptxas -v.

def parse_ptxas(output):
    """ptxas -v output -> [{name, arch, registers, spill_stores, spill_loads, stack}], one per
    function and arch (entry functions and any non-inlined device functions)."""
    records, by_key = [], {}
    arch, current, pending = None, None, []

    def record(name):
        key = (name, arch)
        if key not in by_key:
            by_key[key] = {"name": name, "arch": arch, "registers": None, "spill_stores": 0,
                           "spill_loads": 0, "stack": 0}
            records.append(by_key[key])
            if arch is None:
                pending.append(by_key[key])
        return by_key[key]

    for line in output.splitlines():
        if re.search(r"ptxas info\s*: \d+ bytes gmem", line):  # a new ptxas run (next arch)
            arch, current = None, None
            continue
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\w+)'", line)
        if m:
            arch = m.group(2)
            for r in pending:  # functions listed before the run's first entry function
                by_key.pop((r["name"], None), None)
                r["arch"] = arch
                by_key[(r["name"], arch)] = r
            pending.clear()
            current = record(m.group(1))
            continue
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            current = record(m.group(1))
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      line)
        if m and current is not None:
            current["stack"], current["spill_stores"], current["spill_loads"] = map(int, m.groups())
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and current is not None:
            current["registers"] = int(m.group(1))
    return records


def _enum_names():
    """{(enum, value): enumerator} of the `enum class`es in csrc/ headers, for template args."""
    names = {}
    for header in CSRC.glob("**/*.h"):
        text = re.sub(r"//[^\n]*", "", header.read_text(errors="replace"))
        for enum, body in re.findall(r"enum\s+class\s+(\w+)[^{;]*\{([^}]*)\}", text):
            for key, value in re.findall(r"(\w+)\s*=\s*(\d+)", body):
                names[(enum, value)] = f"{enum}::{key}"
    return names


def demangle(names):
    """{mangled: short readable name}: c++filt when present, minus namespaces and parameters, with
    enum template arguments by name."""
    out = dict(zip(names, names))
    cxxfilt = shutil.which("c++filt")
    if cxxfilt and names:
        enums = _enum_names()
        res = subprocess.run([cxxfilt], input="\n".join(names) + "\n", capture_output=True,
                             text=True)
        if res.returncode == 0 and len(res.stdout.splitlines()) == len(names):
            for name, pretty in zip(names, res.stdout.splitlines()):
                pretty = re.sub(r"^void ", "", pretty)
                pretty = pretty.replace("(anonymous namespace)::", "").replace("ganloss::", "")
                pretty = re.sub(r"\((\w+Launch)?\)$", "", pretty)
                pretty = re.sub(r"\((\w+)\)(\d+)",
                                lambda m: enums.get(m.groups(), m.group(0)), pretty)
                out[name] = pretty
    return out


# ------------------------------------------------------------------------------------------------
# SASS.

@dataclass
class Instr:
    addr: int
    opcode: str    # with modifiers: LDG.E.128.CONSTANT
    operands: str  # everything after the opcode (the predicate guard is dropped)


@dataclass
class Function:
    name: str
    arch: str
    instrs: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)  # label -> address of the next instruction


_INSTR = re.compile(r"/\*([0-9a-f]+)\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)"
                    r"\s*([^;]*);")
_LABEL = re.compile(r"^\s*([.$]?[\w$.]+):\s*$")


def parse_sass(text, arch):
    """nvdisasm -c text -> [Function], one per kernel (.text.<name> section)."""
    functions, fn, pending = [], None, []
    for line in text.splitlines():
        m = re.match(r"^\.text\.(\S+):\s*$", line)
        if m:
            fn = Function(m.group(1), arch)
            functions.append(fn)
            pending = []
            continue
        if fn is None:
            continue
        m = _INSTR.search(line)
        if m:
            ins = Instr(int(m.group(1), 16), m.group(2), m.group(3).strip())
            for label in pending:
                fn.labels[label] = ins.addr
            pending = []
            fn.instrs.append(ins)
            continue
        m = _LABEL.match(line)
        if m:
            pending.append(m.group(1))
    return functions


def _target(ins):
    m = re.search(r"`\(([^)]+)\)", ins.operands)
    return m.group(1) if m else None


def width(opcode):
    """Bytes per thread of a global load or store opcode."""
    m = re.search(r"\.(128|64|U16|S16|U8|S8)\b", opcode)
    return {"128": 16, "64": 8, "U16": 2, "S16": 2, "U8": 1, "S8": 1}[m.group(1)] if m else 4


def loops(fn):
    """Innermost loops as (first, last) addresses: a branch back to a label at or before it
    closes a loop; a loop that holds another one is not innermost."""
    spans = set()
    for ins in fn.instrs:
        if ins.opcode.startswith("BRA"):
            target = fn.labels.get(_target(ins) or "")
            if target is not None and target <= ins.addr:
                spans.add((target, ins.addr))
    return sorted(s for s in spans
                  if not any(o != s and s[0] <= o[0] and o[1] <= s[1] for o in spans))


@dataclass
class LoopStats:
    first: int
    last: int
    instructions: int        # static instructions from the loop's first to its last
    loads: dict              # bytes per thread -> global loads (LDG) in the loop
    stores: dict             # bytes per thread -> global stores (STG)
    loads16_before_store: int  # 16-byte loads before the first global store of the loop
    calls: int                 # CALLs in the loop (64-bit division, slow paths of fp division)

    @property
    def per_load16(self):
        """Instructions per 16-byte load of the loop."""
        return self.instructions / max(1, self.loads.get(16, 0))


def loop_stats(fn, span):
    body = [i for i in fn.instrs if span[0] <= i.addr <= span[1]]
    loads, stores, before, stored = {}, {}, 0, False
    for ins in body:
        if ins.opcode.startswith("LDG"):
            w = width(ins.opcode)
            loads[w] = loads.get(w, 0) + 1
            before += w == 16 and not stored
        elif ins.opcode.startswith("STG"):
            w = width(ins.opcode)
            stores[w] = stores.get(w, 0) + 1
            stored = True
    calls = sum(1 for i in body if i.opcode.startswith("CALL"))
    return LoopStats(span[0], span[1], len(body), loads, stores, before, calls)


def streaming_loops(fn):
    """LoopStats of the innermost loops that make a 16-byte global load."""
    stats = [loop_stats(fn, s) for s in loops(fn)]
    return [s for s in stats if s.loads.get(16, 0)]


def div64_calls(fn):
    return sum(1 for i in fn.instrs if i.opcode.startswith("CALL") and DIV64.search(_target(i) or ""))


def local_memory(fn):
    return sum(1 for i in fn.instrs if i.opcode.split(".")[0] in ("LDL", "STL"))


def mma_count(fn):
    """Tensor-core instructions (HMMA, DMMA) in the kernel."""
    return sum(1 for i in fn.instrs if i.opcode.split(".")[0] in ("HMMA", "DMMA"))


def check_function(fn):
    """The problems of one kernel's SASS (empty: none)."""
    problems = []
    if local_memory(fn):
        problems.append(f"{local_memory(fn)} local-memory instructions (LDL/STL)")
    for s in streaming_loops(fn):
        if s.loads16_before_store < MIN_LOADS_IN_FLIGHT:
            problems.append(f"loop {s.first:#x}-{s.last:#x}: {s.loads16_before_store} 16-byte "
                            f"loads before the first store (want >= {MIN_LOADS_IN_FLIGHT})")
    if div64_calls(fn):
        problems.append(f"{div64_calls(fn)} calls to 64-bit division/remainder")
    return problems


# ------------------------------------------------------------------------------------------------
# Sources and the report.

def kernel_sources(csrc=CSRC):
    """The .cu files under csrc and every csrc file they include (transitively, quoted includes)."""
    todo, seen = sorted(Path(csrc).glob("**/*.cu")), set()
    while todo:
        f = todo.pop().resolve()
        if f in seen or not f.is_file():
            continue
        seen.add(f)
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read_text(errors="replace"), re.M):
            todo.append(f.parent / inc)
    return sorted(seen)


def sources_hash(csrc=CSRC):
    """sha256 over the kernel sources' relative paths and contents: the report's stamp."""
    h = hashlib.sha256()
    for f in kernel_sources(csrc):
        h.update(f.relative_to(Path(csrc).resolve()).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def stamp_of(report_text):
    m = re.search(r"kernel sources sha256: `([0-9a-f]{64})`", report_text)
    return m.group(1) if m else None


def compile_cu(src, obj, nvcc=None, extra=()):
    """nvcc of one .cu with NVCC_FLAGS; returns (returncode, output)."""
    res = subprocess.run([nvcc or nvcc_path(), *NVCC_FLAGS, *extra, str(src), "-o", str(obj)],
                         cwd=ROOT, capture_output=True, text=True)
    return res.returncode, res.stdout + res.stderr


def kernel_rows(src, obj, ptxas_output, workdir):
    """One dict per (kernel, arch) of the object: ptxas numbers, SASS loops, problems."""
    ptxas = {(r["name"], r["arch"]): r for r in parse_ptxas(ptxas_output)}
    rows = []
    for arch, text in sorted(disassemble(obj, workdir).items()):
        for fn in parse_sass(text, arch):
            rows.append({"src": src, "fn": fn, "ptxas": ptxas.get((fn.name, arch), {}),
                         "loops": streaming_loops(fn), "problems": check_function(fn)})
    return rows


def _loop_cell(s):
    ld = " ".join(f"{n}x{w}" for w, n in sorted(s.loads.items(), reverse=True))
    st = " ".join(f"{n}x{w}" for w, n in sorted(s.stores.items(), reverse=True))
    return (f"{s.instructions} instr, LDG {ld or '-'}, STG {st or '-'}, "
            f"{s.loads16_before_store} before 1st STG, {s.per_load16:.0f}/16B load, {s.calls} CALL")


def format_report(rows, stamp, tools):
    names = demangle(sorted({r["fn"].name for r in rows}))
    lines = [
        "# SASS report of the CUDA kernels",
        "",
        "Generated by `python tools/sass_report.py` (no GPU needed); tests/test_nvcc.py fails when",
        "the kernel sources changed since (regenerate and commit this file).",
        "",
        f"kernel sources sha256: `{stamp}`",
        f"tools: {tools}",
        "",
        "Per kernel and arch: registers, stack and spill bytes (ptxas -v), local-memory",
        "instructions, 64-bit division calls, and each streaming loop (innermost loop with a",
        "16-byte load): static instructions, global loads and stores as count x bytes per thread,",
        "16-byte loads issued before the loop's first store, instructions per 16-byte load (per",
        "16-byte vector of x: that times 2 for x and y, 3 or 4 with a full mask), and CALLs in the",
        "loop (floating-point slow paths); tensor-core instructions (HMMA/DMMA) of the kernel.",
        "`problems` lists failed checks.",
        "",
        "| kernel | arch | regs | stack/spill | LDL/STL | div64 | MMA | streaming loops | problems |",
        "|---|---|--:|---|--:|--:|--:|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (str(r["src"]), names[r["fn"].name], r["fn"].arch)):
        p, fn = r["ptxas"], r["fn"]
        loops_text = "<br>".join(_loop_cell(s) for s in r["loops"]) or "-"
        lines.append(
            f"| `{names[fn.name]}` | {fn.arch} | {p.get('registers', '?')} | "
            f"{p.get('stack', '?')}/{p.get('spill_stores', '?')}/{p.get('spill_loads', '?')} | "
            f"{local_memory(fn)} | {div64_calls(fn)} | {mma_count(fn)} | {loops_text} | "
            f"{'; '.join(r['problems']) or '-'} |")
    return "\n".join(lines) + "\n"


def tool_versions():
    out = []
    for tool in (nvcc_path(), find_tool("cuobjdump"), find_tool("nvdisasm")):
        if tool:
            ver = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
            m = re.search(r"release ([\d.]+)", ver)
            out.append(f"{Path(tool).name} {m.group(1) if m else '?'}")
    return ", ".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check the committed stamp")
    ap.add_argument("--out", type=Path, default=REPORT)
    args = ap.parse_args(argv)
    if args.check:
        stale = not args.out.is_file() or stamp_of(args.out.read_text()) != sources_hash()
        print(f"{args.out}: {'stale, run python tools/sass_report.py' if stale else 'up to date'}")
        return int(stale)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, src in enumerate(sorted(CSRC.glob("**/*.cu"))):
            obj = Path(tmp) / f"{i}_{src.stem}.o"
            rc, out = compile_cu(src, obj)
            if rc:
                sys.exit(f"nvcc failed on {src}:\n{out}")
            rows += kernel_rows(src.relative_to(ROOT).as_posix(), obj, out, Path(tmp) / str(i))
    args.out.write_text(format_report(rows, sources_hash(), tool_versions()))
    bad = [r for r in rows if r["problems"]]
    print(f"wrote {args.out}: {len(rows)} kernel builds, {len(bad)} with problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())

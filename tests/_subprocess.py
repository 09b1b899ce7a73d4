"""Running Python in a fresh interpreter with a controlled environment, for the tests that load
(or fail to load) ganloss_cuda: the loader then sees a new process each time, and the pytest
process never builds or imports the package for them. Also single modules of the package (its
build rules, its tolerance table) loaded without the package."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
TESTS = ROOT / "tests"


def package_module(name):
    """ganloss_cuda/<name>.py as a module of its own (as setup.py loads _build.py): importing the
    package would run the loader."""
    spec = importlib.util.spec_from_file_location(f"_ganloss{name}",
                                                  ROOT / "ganloss_cuda" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean_env(**overrides):
    """os.environ without any GANLOSS_CUDA_* setting, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANLOSS_CUDA_")}
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def code(text):
    """The arguments that run `text` (dedented) as python -c."""
    return ["-c", textwrap.dedent(text)]


def script(name):
    """The arguments that run tests/<name>."""
    return [str(TESTS / name)]


def run_python(args, env, timeout):
    """Runs python *args in the repository root, which comes first on the import path (also for
    a script in tests/); returns (the finished process, its wall time in seconds)."""
    path = [str(ROOT), env["PYTHONPATH"]] if env.get("PYTHONPATH") else [str(ROOT)]
    env = dict(env, PYTHONPATH=os.pathsep.join(path))
    start = time.time()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc, time.time() - start


def run_ok(args, env, timeout):
    """run_python that must exit 0."""
    proc, seconds = run_python(args, env, timeout)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc, seconds


def run_json(args, env, timeout):
    """run_ok of a program that prints a JSON line: (the process, its last JSON line, seconds)."""
    proc, seconds = run_ok(args, env, timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in the output:\n{proc.stdout}"
    return proc, json.loads(lines[-1]), seconds


def count_lines(pattern, text):
    """How many lines of text match pattern."""
    return len(re.findall(pattern, text, flags=re.M))

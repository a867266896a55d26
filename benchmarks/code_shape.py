"""The redesign's figures: `synthpipe --help` wall time, and the size of the flow.

    .venv/bin/python benchmarks/code_shape.py [--repeats 5] [--tree PATH]

Prints, for the tree given (default: this checkout): the median wall time of
`python -m flows.cli --help` in a fresh interpreter (what a user waits for), whether torch
was imported, the line count of the `synthesize` flow function, and the five largest
functions under flows/. Run it alone: other processes on the machine slow the start-up.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def help_seconds(tree: Path, repeats: int) -> tuple[float, bool]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "flows.cli", "--help"],
            cwd=tree,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    probe = (
        "import sys\nfrom flows.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tree, check=True, capture_output=True, text=True
    )
    return statistics.median(times), out.stdout.strip().splitlines()[-1] == "True"


def function_sizes(tree: Path) -> list[tuple[int, str]]:
    sizes = []
    for path in sorted((tree / "flows").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                sizes.append((lines, f"{path.relative_to(tree)}:{node.name}"))
    return sorted(sizes, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=ROOT)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    seconds, torch_loaded = help_seconds(args.tree, args.repeats)
    sizes = function_sizes(args.tree)
    flow = next(lines for lines, name in sizes if name.endswith("synthesize.py:synthesize"))
    print(f"tree: {args.tree}  (load average at start {load:.2f}, {os.cpu_count()} CPUs)")
    print(
        f"synthpipe --help: median {seconds:.2f} s over {args.repeats} runs; torch imported: "
        f"{torch_loaded}"
    )
    print(f"synthesize flow function: {flow} lines")
    print("largest functions in flows/:")
    for lines, name in sizes[:5]:
        print(f"  {lines:4d}  {name}")


if __name__ == "__main__":
    main()

"""``python -m bench``: run the benchmark sections in ONE process on the same seeded inputs.

Prints a table and writes ``bench/results/bench.json``. Hook: a section is any callable taking
no required arguments and returning a JSON-able dict; an optional ``rows`` list of dicts with
``case``, ``rate``, ``unit`` and optional ``vs_keras`` / ``roofline_fraction`` / ``vs_baseline``
/ ``per_cpu_s`` (work per CPU-second of this process: on a shared machine, x cores estimates
the idle rate) is printed in the table. Add a section with :func:`register` (or an entry in :data:`SECTIONS`):
``"composite": "bench.composite:run"``. ``--only a,b`` runs a subset.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import devices, machine, matmul_gflops, write_results

#: name -> "module:function"; run in this order.
SECTIONS: dict[str, str] = {
    "pixel": "bench.pixel:run",
    "ensemble": "bench.pixel:run_ensemble",
    "patch": "bench.patch:run",
    "heatmap": "bench.pixel:run_heatmap",
    "forward": "bench.forward:run",
    "composite": "bench.composite:run",
    "blobs": "bench.blobs:run",
    "endtoend": "bench.endtoend:run",
    "realimagery": "bench.realimagery:run",
    "realgranule": "bench.realgranule:run",
    "device": "bench.device:run",
}
RESULTS = Path(__file__).resolve().parent / "results" / "bench.json"


def register(name: str, target: str) -> None:
    """Add a section ``name`` -> ``"module:function"`` (compositing, blobs, end-to-end...)."""
    SECTIONS[name] = target


def load(target: str) -> Callable[[], dict[str, Any]]:
    module, func = target.split(":")
    fn: Callable[[], dict[str, Any]] = getattr(importlib.import_module(module), func)
    return fn


def table(results: dict[str, Any]) -> str:
    lines = [f"{'case':<48} {'rate':>12} {'unit':<6} {'x keras/base':>12} {'roofline':>9} {'per CPU-s':>12}"]
    for sec in results.values():
        for r in sec.get("rows", []) if isinstance(sec, dict) else []:
            ratio = r.get("vs_keras", r.get("vs_baseline"))
            roof, cpu = r.get("roofline_fraction"), r.get("per_cpu_s")
            rate = f"{r['rate']:>12,.2f}" if r["unit"] == "s" else f"{r['rate']:>12,.0f}"
            lines.append(
                f"{r['case']:<48} {rate} {r['unit']:<6} "
                f"{'' if ratio is None else f'{ratio:.1f}x':>12} {'' if roof is None else f'{roof:.0%}':>9} "
                f"{'' if cpu is None else f'{cpu:,.0f}':>12}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated section names (default: all)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    names = [n for n in args.only.split(",") if n] or list(SECTIONS)
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        print(f"unknown sections {unknown}; known: {sorted(SECTIONS)}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"machine": {**machine(), **devices(), "matmul_gflops": matmul_gflops()}}
    for name in names:
        t0 = time.perf_counter()
        results[name] = load(SECTIONS[name])()
        results[name]["section_seconds"] = time.perf_counter() - t0
        print(f"[{name}] done in {results[name]['section_seconds']:.1f} s", file=sys.stderr)
    results["machine"]["loadavg_after"] = machine()["loadavg_1_5_15"]
    m = results["machine"]
    gpus = f" ({', '.join(m['gpus'])})" if m["gpus"] else ""
    print(
        f"machine: {m['cpu_model']} x{m['cpu_count']}; Keras backend {m['keras_backend']} on "
        f"{m['tensorflow_device']}{gpus}; "
        f"matmul {m['matmul_gflops']:.0f} GFLOP/s"
    )
    print(table(results))
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

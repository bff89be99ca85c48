"""Cold and warm start of the CPU kernels: fhe_gpu.ring.warm_up in a fresh process with an
empty Numba cache (cold), then again with the cache it filled (warm), several times.

    python bench/cold_start.py                       # 3 runs, helper process auto
    python bench/cold_start.py --runs 5 --helper on off
    python bench/cold_start.py --command "fhe-gpu demo"   # a whole command, cold vs warm

Each run prints its mode, seconds and the 1-minute load average before it (the machine's
other work slows a cold start more than anything in it); the summary gives min and median
per mode. ``--command`` times the command itself in place of warm_up (the cold start of
the code as it is, with or without warm_up), e.g. to compare with an older checkout.
``--json`` prints the runs as one JSON object instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

WARM_UP = ("import sys, time; t = time.perf_counter(); from fhe_gpu.ring import warm_up; "
           "warm_up('{backend}', helper_process={helper}); "
           "print(time.perf_counter() - t, file=sys.stderr)")
HELPER = {"auto": "None", "on": "True", "off": "False"}


def _load() -> float:
    return os.getloadavg()[0]


def _run(argv: list[str], cache: str) -> float:
    """Wall seconds of argv with NUMBA_CACHE_DIR=cache (its output discarded)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode:
        sys.exit(f"{shlex.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def _argv(args, helper: str) -> list[str]:
    if args.command:
        return shlex.split(args.command)
    return [sys.executable, "-c", WARM_UP.format(backend=args.backend, helper=HELPER[helper])]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--helper", nargs="+", default=["auto"], choices=sorted(HELPER))
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--command", help="time this command instead of warm_up")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    modes = ["command"] if args.command else args.helper
    runs = []
    for i in range(args.runs):
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
                for state in ("cold", "warm"):
                    load = _load()
                    secs = _run(_argv(args, mode), cache)
                    runs.append({"mode": mode, "state": state, "seconds": secs, "load": load})
                    if not args.json:
                        print(f"run {i + 1} {mode:>7} {state}: {secs:6.2f} s (load {load:.2f})",
                              flush=True)
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "runs": runs}))
        return
    for mode in modes:
        for state in ("cold", "warm"):
            xs = [r["seconds"] for r in runs if r["mode"] == mode and r["state"] == state]
            print(f"{mode:>7} {state}: min {min(xs):.2f} s, median {statistics.median(xs):.2f} s"
                  f" over {len(xs)} runs")


if __name__ == "__main__":
    main()

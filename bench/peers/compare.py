"""fhe_gpu against OpenFHE and SEAL at the same parameters, timed in one invocation.

    python bench/peers/compare.py [--logn 14 15 16] [--threads 1 2] [--repeats 7]
                                  [--libs fhe_gpu openfhe seal] [--out bench/results/compare.json]

Libraries fix their thread count when they load, so the script re-executes itself once per
thread count (OMP_NUM_THREADS = NUMBA_NUM_THREADS = t in the child's environment). Inside a
child every library is set up at one N, each op is called once untimed (fhe_gpu's first-call
latency, JIT included, is recorded apart), and then the ops are timed interleaved: per
repeat, per op, one call of each library, the order of the libraries rotating between
repeats. Reported: medians in ms, our-time / peer-time ratios, and the precision
after one ct x ct multiply + relinearize + rescale of uniform inputs in [-1, 1] in all N/2
slots at scale 2^40, for each of --precision-trials fresh encryptions: -log2 of the max
and of the RMS abs error over the slots. The max over 2^15 slots varies by about 0.2 bits
from one encryption to the next, so the report averages the trials of all runs (each run
has its own keys) and gives the standard error. Needs Python 3.10 (the openfhe wheel):
bench/peers/setup_peers.sh makes such an environment.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from libs import ADAPTERS, OP_LABELS, OPS  # noqa: E402

THREAD_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "MKL_NUM_THREADS")
PEERS = ("OpenFHE", "SEAL")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logn", type=int, nargs="+", default=[14, 15, 16], choices=[14, 15, 16])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per op and library")
    ap.add_argument("--precision-trials", type=int, default=10,
                    help="fresh encryptions whose precision is measured, per run")
    ap.add_argument("--libs", nargs="+", default=list(ADAPTERS), choices=list(ADAPTERS))
    ap.add_argument("--backend", default="cpu", help="fhe_gpu backend (cpu or cuda)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "compare.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- child side
def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _timed(fn) -> float:
    """Milliseconds of one call; the result is released after the clock stops."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
    finally:
        gc.enable()
    del out
    return elapsed * 1e3


def _prepare(adapter, op: str) -> None:
    prepare = getattr(adapter, "prepare", None)
    if prepare is not None:
        prepare(op)


def _build(logn: int, names, backend: str) -> tuple[dict, dict]:
    adapters, setup_s = {}, {}
    for key in names:
        cls = ADAPTERS[key]
        t0 = time.perf_counter()
        adapters[cls.name] = cls(logn, backend) if key == "fhe_gpu" else cls(logn)
        setup_s[cls.name] = time.perf_counter() - t0
        _log(f"  2^{logn}: {cls.name} ready in {setup_s[cls.name]:.1f} s")
    return adapters, setup_s


def _interleaved(adapters: dict, ops: dict, repeats: int) -> dict:
    """samples[lib][op] = list of ms, one call of each library per op per repeat."""
    names = list(adapters)
    samples = {name: {op: [] for op in OPS} for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for op in OPS:
            for name in order:
                _prepare(adapters[name], op)
                samples[name][op].append(_timed(ops[name][op]))
    return samples


def measure_size(logn: int, args) -> dict:
    """Every library at N = 2^logn: setup, first calls, precision, interleaved medians."""
    adapters, setup_s = _build(logn, args.libs, args.backend)
    ops = {name: a.ops() for name, a in adapters.items()}
    first = {}
    for name, adapter in adapters.items():
        first[name] = {}
        for op in OPS:
            _prepare(adapter, op)
            first[name][op] = _timed(ops[name][op])
    precision = {name: [a.precision(t) for t in range(args.precision_trials)]
                 for name, a in adapters.items()}
    t0 = time.perf_counter()
    samples = _interleaved(adapters, ops, args.repeats)
    _log(f"  2^{logn}: {args.repeats} repeats timed in {time.perf_counter() - t0:.1f} s")
    out = {}
    for name, adapter in adapters.items():
        out[name] = {
            "params": adapter.describe(), "setup_s": setup_s[name],
            "first_call_ms": first[name],
            "precision": {key: [trial[key] for trial in precision[name]]
                          for key in ("max_bits", "rms_bits")},
            "ops": {op: {"median_ms": statistics.median(s), "min_ms": min(s), "samples_ms": s}
                    for op, s in samples[name].items()},
        }
    return out


def child_main(args) -> None:
    threads = int(os.environ.get("NUMBA_NUM_THREADS", "0"))
    results = {}
    for logn in args.logn:
        _log(f"threads={threads}, N=2^{logn}")
        results[str(logn)] = measure_size(logn, args)
        gc.collect()
    Path(args.out).write_text(json.dumps({"results": results}))


# ---------------------------------------------------------------------------- parent side
def _git(*cmd) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def collect_meta(args) -> dict:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host_cpu": _cpu_model(),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "repeats": args.repeats, "precision_trials": args.precision_trials,
        "backend": args.backend,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }


def run_child(threads: int, args) -> dict:
    env = dict(os.environ, **{var: str(threads) for var in THREAD_VARS})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--out", str(out),
               "--repeats", str(args.repeats), "--backend", args.backend,
               "--precision-trials", str(args.precision_trials),
               "--logn", *map(str, args.logn), "--libs", *args.libs]
        load_before = os.getloadavg()
        subprocess.run(cmd, env=env, check=True)
        data = json.loads(out.read_text())
    data.update(threads=threads, load_before=load_before, load_after=os.getloadavg())
    return data


def ratio_lines(data: dict) -> list[str]:
    """Plain-text tables of medians and fhe_gpu / peer ratios."""
    lines = []
    for run in data["runs"]:
        for logn, libs in run["results"].items():
            peers = [p for p in PEERS if p in libs]
            lines.append(f"\nN=2^{logn}, {run['threads']} thread(s): median ms "
                         f"(fhe_gpu / peer)")
            head = f"{'op':<16}{'fhe_gpu':>10}" + "".join(f"{p:>10}{'ratio':>8}" for p in peers)
            lines.append(head)
            ours = libs.get("fhe_gpu")
            for op in OPS:
                row = f"{OP_LABELS[op]:<16}"
                row += f"{ours['ops'][op]['median_ms']:>10.2f}" if ours else f"{'-':>10}"
                for p in peers:
                    t = libs[p]["ops"][op]["median_ms"]
                    ratio = ours["ops"][op]["median_ms"] / t if ours else float("nan")
                    row += f"{t:>10.2f}{ratio:>8.2f}"
                lines.append(row)
            prec = "  ".join(f"{name} {statistics.mean(v['precision']['max_bits']):.2f} "
                             f"(rms {statistics.mean(v['precision']['rms_bits']):.3f})"
                             for name, v in libs.items())
            lines.append(f"precision bits, mean over trials of max (and rms) error: {prec}")
    return lines


def parent_main(args) -> None:
    data = {"meta": collect_meta(args), "runs": []}
    for threads in args.threads:
        print(f"== {threads} thread(s); load average {os.getloadavg()[0]:.2f}", flush=True)
        data["runs"].append(run_child(threads, args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    print("\n".join(ratio_lines(data)))
    print(f"\nwrote {out}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()

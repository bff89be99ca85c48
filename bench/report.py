"""Markdown tables and PNG plots from the JSON of bench/peers/compare.py.

    python bench/report.py [--json bench/results/compare.json] [--out-dir bench/results]
                           [--pytest-json bench/results/pytest_bench.json]

Writes ``compare.md`` (median ms per op, library and N for each thread count, with
fhe_gpu / peer ratios, and the precision after mul + relinearize + rescale),
``times.png`` (median time per op against N) and ``ratios.png`` (fhe_gpu time / peer time
per op, one panel per peer). With ``--pytest-json`` (the output of
``pytest bench --benchmark-json``) it also writes ``pytest_bench.md``.
Needs matplotlib (installed by bench/peers/setup_peers.sh; not a dependency of fhe_gpu).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
from libs import OP_LABELS, OPS  # noqa: E402  (bench/peers is a script folder)

OURS, PEERS = "fhe_gpu", ("OpenFHE", "SEAL")
LIBS = (OURS,) + PEERS
COLORS = {OURS: "tab:blue", "OpenFHE": "tab:orange", "SEAL": "tab:green"}
N_COLORS = {"14": "#9ecae1", "15": "#4292c6", "16": "#08306b"}


def _median(data: dict, threads: int, logn: str, lib: str, op: str):
    for run in data["runs"]:
        if run["threads"] == threads:
            entry = run["results"].get(logn, {}).get(lib)
            return entry["ops"][op]["median_ms"] if entry else None
    return None


def _sizes(data: dict) -> list[str]:
    return sorted({n for run in data["runs"] for n in run["results"]}, key=int)


def _fmt_ms(t) -> str:
    if t is None:
        return "–"
    return f"{t:.0f}" if t >= 100 else f"{t:.1f}" if t >= 10 else f"{t:.2f}"


def _fmt_ratio(a, b) -> str:
    return "–" if a is None or b is None else f"{a / b:.2f}"


def _libs_present(data: dict) -> list[str]:
    seen = {lib for run in data["runs"] for res in run["results"].values() for lib in res}
    return [lib for lib in LIBS if lib in seen]


def time_table(data: dict) -> list[str]:
    """One Markdown table: rows op × N; columns median ms per library and fhe_gpu / peer
    ratios, each cell listing the thread counts of the runs in order (e.g. 1T / 2T)."""
    libs = _libs_present(data)
    peers = [p for p in PEERS if p in libs]
    threads = [run["threads"] for run in data["runs"]]
    tag = " / ".join(f"{t}T" for t in threads)
    head = ["op", "N"] + [f"{lib} ms ({tag})" for lib in libs]
    head += [f"{OURS} / {p} ({tag})" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for op in OPS:
        for logn in _sizes(data):
            t = {lib: [_median(data, th, logn, lib, op) for th in threads] for lib in libs}
            cells = [OP_LABELS[op], f"2^{logn}"]
            cells += [" / ".join(_fmt_ms(v) for v in t[lib]) for lib in libs]
            cells += [" / ".join(_fmt_ratio(a, b) for a, b in zip(t[OURS], t[p]))
                      if OURS in t else "–" for p in peers]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _pooled(data: dict, logn: str, lib: str, key: str) -> list[float]:
    """Per-trial precision of one library at one N, pooled over the runs (their keys
    differ, their thread counts do not change the arithmetic)."""
    return [v for run in data["runs"]
            for v in run["results"].get(logn, {}).get(lib, {}).get("precision", {}).get(key, [])]


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def precision_table(data: dict) -> list[str]:
    """Rows N; per library the mean ± standard error of the max-error bits (worst trial)
    and the mean RMS-error bits; then fhe_gpu − peer with a 95% interval."""
    libs = _libs_present(data)
    peers = [p for p in PEERS if p in libs and OURS in libs]
    head = ["N", "trials"] + [f"{lib} max (worst) · rms" for lib in libs]
    head += [f"{OURS} − {p}: max · rms" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for logn in _sizes(data):
        stats, cells = {}, []
        for lib in libs:
            mx, rms = _pooled(data, logn, lib, "max_bits"), _pooled(data, logn, lib, "rms_bits")
            if not mx:
                cells.append("–")
                continue
            stats[lib] = (_mean_se(mx), _mean_se(rms))
            (m, se), (r, _) = stats[lib]
            cells.append(f"{m:.2f} ± {se:.2f} ({min(mx):.2f}) · {r:.3f}")
        for p in peers:
            if OURS not in stats or p not in stats:
                cells.append("–")
                continue
            diffs = [stats[OURS][k][0] - stats[p][k][0] for k in (0, 1)]
            half = [1.96 * math.hypot(stats[OURS][k][1], stats[p][k][1]) for k in (0, 1)]
            cells.append(f"{diffs[0]:+.2f} ± {half[0]:.2f} · {diffs[1]:+.3f} ± {half[1]:.3f}")
        trials = len(_pooled(data, logn, OURS if OURS in libs else libs[0], "max_bits"))
        lines.append(f"| 2^{logn} | {trials} | " + " | ".join(cells) + " |")
    return lines


def _library_line(data: dict) -> str:
    seen = {}
    for run in data["runs"]:
        for logn, res in run["results"].items():
            for lib, entry in res.items():
                p = entry["params"]
                seen.setdefault(lib, []).append(
                    f"2^{logn}: P = {len(p['p_bits'])}×{p['p_bits'][0]} bits, dnum {p['dnum']}")
                seen[lib + " name"] = p["library"]
    out = []
    for lib in _libs_present(data):
        sizes = "; ".join(dict.fromkeys(seen[lib]))
        out.append(f"- **{lib}** ({seen[lib + ' name']}): {sizes}")
    return "\n".join(out)


def markdown(data: dict) -> str:
    meta = data["meta"]
    loads = ", ".join(f"{r['threads']} thread(s): {r['load_before'][0]:.2f} → "
                      f"{r['load_after'][0]:.2f}" for r in data["runs"])
    parts = [
        f"Run {meta['date']} on {meta['cpus']} × {meta['host_cpu']}, fhe_gpu commit "
        f"{meta['git_commit']}{' (with uncommitted changes)' if meta['git_dirty'] else ''}, "
        f"backend `{meta['backend']}`, median of {meta['repeats']} interleaved calls per op. "
        f"Load average (1 min) before → after: {loads}.",
        "", "Q = [60] + L×[40] bits (L = 6 / 13 / 27), scale 2^40, uniform ternary secret, "
        "public-key encryption, N/2 slots. `mul_relin` = ct×ct + relinearize, no rescale; "
        "`rescale` of that product; `decrypt+decode` includes decoding to N/2 slots (OpenFHE "
        "decodes inside Decrypt). Ratio < 1: fhe_gpu is faster. SEAL is single-threaded: "
        "its 2T figures are a second sample of the same code. OpenFHE adds noise when it "
        "decrypts (an IND-CPA^D countermeasure), which lowers its precision.", "",
        _library_line(data), ""]
    parts += time_table(data) + [""]
    runs = len(data["runs"])
    parts += [f"**Precision** after mul + relinearize + rescale, in bits: −log2 of the max abs "
              f"error over the slots, mean ± standard error over {meta['precision_trials']} "
              f"fresh encryptions in each of {runs} run(s) (each run has its own keys; the "
              f"worst trial in brackets), and −log2 of the RMS error, mean over the same "
              f"trials. The last columns are the differences with a 95% interval: positive "
              f"means fhe_gpu is more precise.", ""]
    parts += precision_table(data) + [""]
    return "\n".join(parts)


def _plain_log(ax) -> None:
    """Log y axis labelled with plain numbers (0.5, 30): minor ticks 2 and 5 of every decade,
    and 3 when the axis spans less than 1.5 decades."""
    from matplotlib.ticker import FuncFormatter

    def minor(v, _):
        lo, hi = ax.get_ylim()
        lead = round(v / 10 ** math.floor(math.log10(v)), 6) if v > 0 else 0
        return f"{v:g}" if lead in ((2, 3, 5) if hi / lo < 30 else (2, 5)) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def plot_times(data: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    sizes, libs = _sizes(data), _libs_present(data)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5), constrained_layout=True)
    for ax, op in zip(axes.flat, OPS):
        for lib in libs:
            for run in data["runs"]:
                ys = [_median(data, run["threads"], n, lib, op) for n in sizes]
                style = "-o" if run["threads"] == 1 else "--s"
                ax.plot([int(n) for n in sizes], [math.nan if y is None else y for y in ys],
                        style, color=COLORS[lib], label=f"{lib}, {run['threads']}T")
        _plain_log(ax)
        ax.set_xticks([int(n) for n in sizes], [f"$2^{{{n}}}$" for n in sizes])
        ax.set_title(OP_LABELS[op])
        ax.set_xlabel("N")
        ax.set_ylabel("median ms")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    fig.suptitle("Median time per operation (solid: 1 thread, dashed: 2 threads)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ratio_bars(ax, data: dict, peer: str) -> None:
    sizes, runs = _sizes(data), data["runs"]
    combos = [(n, run["threads"]) for run in runs for n in sizes]
    width = 0.8 / len(combos)
    for k, (n, threads) in enumerate(combos):
        vals = []
        for op in OPS:
            a, b = _median(data, threads, n, OURS, op), _median(data, threads, n, peer, op)
            vals.append(math.nan if a is None or b is None else a / b)
        xs = [i + (k - (len(combos) - 1) / 2) * width for i in range(len(OPS))]
        ax.bar(xs, vals, width, color=N_COLORS.get(n, "gray"), edgecolor="black",
               linewidth=0.4, hatch="//" if threads > 1 else None,
               label=f"$N=2^{{{n}}}$, {threads}T")
    ax.axhline(1.0, color="black", linewidth=1)
    ax.axhline(0.8, color="red", linewidth=1, linestyle=":", label="goal 0.8")
    _plain_log(ax)
    ax.set_xticks(range(len(OPS)), [OP_LABELS[op] for op in OPS], rotation=20)
    ax.set_ylabel(f"{OURS} time / {peer} time")
    ax.set_title(f"{OURS} / {peer} (below 1: {OURS} faster)")
    ax.grid(True, axis="y", which="both", alpha=0.3)


def plot_ratios(data: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    peers = [p for p in PEERS if p in _libs_present(data)]
    fig, axes = plt.subplots(len(peers), 1, figsize=(13, 4.8 * len(peers)), squeeze=False,
                             constrained_layout=True)
    for ax, peer in zip(axes[:, 0], peers):
        _ratio_bars(ax, data, peer)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pytest_markdown(path: Path) -> str:
    """A table of a pytest-benchmark JSON file: test, median / min ms, rounds, extra info."""
    data = json.loads(path.read_text())
    lines = [f"pytest-benchmark run {data.get('datetime', '')}, "
             f"{data.get('machine_info', {}).get('cpu', {}).get('brand_raw', '')}", "",
             "| benchmark | median ms | min ms | rounds | extra |", "|---|---:|---:|---:|---|"]
    for b in data["benchmarks"]:
        s = b["stats"]
        extra = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in b.get("extra_info", {}).items())
        lines.append(f"| `{b['name']}` | {s['median'] * 1e3:.3f} | {s['min'] * 1e3:.3f} | "
                     f"{s['rounds']} | {extra} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=str(HERE / "results" / "compare.json"))
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    ap.add_argument("--pytest-json", default=None)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = json.loads(Path(args.json).read_text())
    (out / "compare.md").write_text(markdown(data))
    plot_times(data, out / "times.png")
    plot_ratios(data, out / "ratios.png")
    written = ["compare.md", "times.png", "ratios.png"]
    if args.pytest_json:
        (out / "pytest_bench.md").write_text(pytest_markdown(Path(args.pytest_json)))
        written.append("pytest_bench.md")
    print("wrote " + ", ".join(str(out / name) for name in written))


if __name__ == "__main__":
    main()

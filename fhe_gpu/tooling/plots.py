"""PNG plots of ``fhe-gpu bench`` and ``fhe-gpu sweep`` (matplotlib, an optional extra:
``pip install "fhe-gpu[plot]"``)."""
from __future__ import annotations

from ..errors import FHEError

INSTALL_HINT = ('plots need matplotlib, which is not installed: pip install "fhe-gpu[plot]" '
                '(or pip install matplotlib), or run without --plot')


class PlotUnavailableError(FHEError, ImportError):
    """A plot was asked for but matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailableError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def require() -> None:
    """PlotUnavailableError now (before long work) when matplotlib is missing."""
    _pyplot()


def bench(result: dict, path: str) -> str:
    """A horizontal bar chart of the median time of each op (log scale, values written on
    the bars, every run as a dot), titled with the parameters and the machine."""
    plt = _pyplot()
    ops = list(result["ops"])[::-1]
    ms = [result["ops"][k]["ms"] for k in ops]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(ops) + 2.0))
    bars = ax.barh(ops, ms, color="#4878a8")
    for i, k in enumerate(ops):
        runs = result["ops"][k]["runs"]
        ax.plot(runs, [i] * len(runs), "o", color="#222222", markersize=2.5)
    ax.set_xscale("log")
    ax.set_xlim(min(ms) / 2, max(max(r["runs"]) for r in result["ops"].values()) * 8)
    for bar, v, k in zip(bars, ms, ops):
        right = max([v] + list(result["ops"][k]["runs"]))
        ax.text(right * 1.2, bar.get_y() + bar.get_height() / 2, f"{v:.3g} ms",
                va="center", fontsize=9)
    ax.set_xlabel("milliseconds (median of the runs shown as dots; log scale)")
    m = result["machine"]
    ax.set_title(f"fhe_gpu {result['label']}: {result['params']['summary']}\n"
                 f"backend {result['backend']}, {m['threads']} thread(s) of {m['cpus']} CPUs,"
                 f" {result['repeat']} timed runs per op", fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def sweep(rows, path: str, title: str) -> str:
    """Two panels: key size against key-switch time (each point a (dnum, special primes)
    configuration, colored by security margin, hollow when over the bound) and the
    predicted precision after one rotation by dnum."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6))
    timed = [r for r in rows if r["key_switch_ms"] is not None]
    margins = [r["security_margin"] for r in rows]
    span = max(1.0, max(abs(m) for m in margins))
    cmap = plt.get_cmap("RdYlGn")
    for r in rows:
        y = r["key_switch_ms"] if r["key_switch_ms"] is not None else None
        if y is None:
            continue
        color = cmap(0.5 + 0.5 * r["security_margin"] / span)
        left.scatter(r["key_mib"], y, s=60, color=color, edgecolor="black",
                     marker="o" if r["policy"] == "safe" else "s")
        left.annotate(f"dnum {r['dnum']}, K={r['special_primes']}"
                      + (f" (2^{r['log_n']})" if len({x['log_n'] for x in rows}) > 1 else ""),
                      (r["key_mib"], y), textcoords="offset points",
                      xytext=(6, 3) if r["policy"] == "minimal" else (-8, -11),
                      ha="left" if r["policy"] == "minimal" else "right", fontsize=7)
    if timed:
        left.set_xscale("log")
        left.set_yscale("log")
        left.margins(x=0.25, y=0.12)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-span, span))
    fig.colorbar(sm, ax=left, label="security margin: bound - log QP (bits)")
    left.set_xlabel("one switching key (MiB, log scale)")
    left.set_ylabel("one key switch (ms, log scale)")
    left.set_title("key size vs key-switch time (squares: fewest special primes;\n"
                   "circles: enough for no precision loss; insecure ones not timed)",
                   fontsize=9)
    left.grid(True, which="both", alpha=0.3)
    labels = [f"dnum {r['dnum']}\nK={r['special_primes']}"
              + (f"\n2^{r['log_n']}" if len({x['log_n'] for x in rows}) > 1 else "")
              for r in rows]
    colors = ["#c44e52" if r["policy"] == "minimal" else "#4878a8" for r in rows]
    bars = right.bar(range(len(rows)), [r["rotation_bits"] for r in rows], color=colors)
    for bar, r in zip(bars, rows):
        if r["security_margin"] < 0:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
        right.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.2,
                   f"{r['rotation_bits']:.1f}", ha="center", fontsize=7)
    right.set_xticks(range(len(rows)), labels, fontsize=7)
    right.set_ylabel("predicted precision after one rotation (bits)")
    right.set_ylim(0, max(r["rotation_bits"] for r in rows) * 1.12)
    right.set_title("precision after a rotation (Simulator): red = fewest special primes "
                    "allowed,\nblue = enough special primes for no loss; hatched = over the "
                    "security bound", fontsize=9)
    right.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


"""HTTP load on ``fhe-gpu serve``: a sustainable rate, then 3x that rate.

    python bench/serving_load.py [--params small|N13|N14...] [--tenants 8] [--duration 60]
        [--factor 3] [--rate R] [--json bench/results/serving_load.json]

Starts the server in a subprocess (loopback, a free port, backend cpu), registers the
tenants over HTTP and sends pre-encrypted requests (tenants interleaved) from an asyncio
open-loop generator on keep-alive connections (arrivals at a fixed rate, each request
its own task, nothing retried: a 429 counts as refused). Phases:

1. idle: one request at a time (``--idle`` seconds): the unloaded latency;
2. capacity: ``max_inflight`` requests in flight at all times (10 s), the throughput X;
3. sustained: open loop at R = ``--load`` x X (or ``--rate``) for ``--duration`` s;
4. overload: open loop at ``--factor`` x R for ``--duration`` s.

Reported per phase: offered and achieved rates, responses by status, latency percentiles
of the accepted (200) responses, the generator's own lateness (how late it sent: it
shares the machine), the server's histograms (upper bucket bounds of its p50/p99); every
25th result is decrypted after the phase and checked against the model's cleartext twin;
the server's RSS and that it still serves at the end; the 1-minute load average before
and after (the machine is shared). Checks: no 429 in the sustained phase, 429s in the
overload phase, overload p99 <= 2 x idle p99 and <= 2 x sustained p99, no status other
than 200 and 429, correct results, the server alive.

Server defaults (``--max-batch 4 --max-inflight 4 --max-queue 8``): one batch in flight.
Admission bounds the latency of what is accepted: a request that arrives while a batch
runs waits for it, so an accepted request's latency is at most about two batch times,
whatever the offered rate; more in flight buys throughput with latency. At N = 2^10 a
batch of 4 takes twice a single request's time, so the setting that keeps the accepted
p99 within 2x the idle p99 under 3x overload is one small batch in the server:

    python bench/serving_load.py --server-threads 1 --max-batch 2 --max-inflight 2 \
        --max-latency-ms 45 --rate 33

``small`` is the tests' N = 2^10 set (insecure, fast); presets are secure and slower.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

import fhe_gpu as fg
from fhe_gpu import engine, serving

OCTET = "application/octet-stream"
#: bits every checked result must reach against the cleartext twin
BITS = 18
#: seconds a keep-alive connection may idle before the generator drops it (uvicorn: 5)
IDLE_S = 3.0


def build(name: str):
    """Parameters and a 3-layer model (Linear + GELU + Linear) that fits them."""
    rng = np.random.default_rng(5)
    if name == "small":
        params = fg.Parameters(log_n=10, q_bits=[60] + [40] * 5, p_bits=[60], scale_bits=40,
                               security=None)
        dims, degree = (16, 24, 8), 7
    else:
        params = fg.Parameters.preset(name)
        dims, degree = (64, 32, 8), (7 if params.max_level >= 5 else None)
    d_in, hidden, d_out = dims
    layers = [engine.Linear(rng.uniform(-1, 1, (hidden, d_in)) / np.sqrt(d_in),
                            rng.uniform(-0.5, 0.5, hidden))]
    layers.append(engine.Activation("gelu", interval=(-8, 8), degree=degree) if degree
                  else engine.Square())
    layers.append(engine.Linear(rng.uniform(-1, 1, (d_out, hidden)) / np.sqrt(hidden)))
    return params, engine.Model(layers, name="clf")


def _cpus(spec: str | None) -> set[int] | None:
    """CPU numbers from "0,1" or "2-3" (None: no pinning)."""
    if not spec:
        return None
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def start_server(workdir: str, params, model, args) -> tuple[subprocess.Popen, str]:
    """``fhe-gpu serve`` in a subprocess; (process, base URL)."""
    with open(os.path.join(workdir, "params.bin"), "wb") as f:
        f.write(params.to_bytes())
    model.save(os.path.join(workdir, "clf.npz"))
    cmd = [sys.executable, "-m", "fhe_gpu.serving.command", "--params", "params.bin",
           "--model", "clf=clf.npz", "--backend", "cpu", "--port", "0",
           "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
           "--max-queue", str(args.max_queue), "--max-inflight", str(args.max_inflight)]
    if args.max_latency_ms:
        cmd += ["--max-latency-ms", str(args.max_latency_ms)]
    env = dict(os.environ)
    if args.server_threads:
        env["NUMBA_NUM_THREADS"] = str(args.server_threads)
    cpus = _cpus(args.server_cpus)
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, text=True, env=env,
                            stderr=open(os.path.join(workdir, "server.log"), "w"),
                            preexec_fn=None if cpus is None else
                            (lambda: os.sched_setaffinity(0, cpus)))
    match = re.search(r"listening on (http://\S+)", proc.stdout.readline())
    if not match:
        raise RuntimeError("the server did not start (see server.log)")
    url = match.group(1)
    probe = serving.HttpClient(url)
    deadline = time.monotonic() + 120
    while not probe.health():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the server is not ready")
        time.sleep(0.2)
    return proc, url


class Tenants:
    """Registered tenants with a pool of pre-encrypted requests each."""

    def __init__(self, url: str, params, model, count: int, pool: int):
        http = serving.HttpClient(url)
        rng = np.random.default_rng(11)
        self.model = model
        self.clients = {f"tenant-{i}": engine.Client(params, model, seed=bytes([i + 1]) * 32,
                                                     backend="cpu") for i in range(count)}
        self.items = []
        for name, client in self.clients.items():
            http.register(name, client.evaluation_key_bytes())
            for _ in range(pool):
                x = rng.uniform(-1, 1, (1, model.input_dim))
                self.items.append((name, http.tokens[name], x, client.encrypt(x)))
        order = np.argsort([i % pool for i in range(len(self.items))], kind="stable")
        self.items = [self.items[i] for i in order]        # tenants interleaved
        http.close()

    def check(self, log: list, every: int = 25) -> list[float]:
        """Precision bits of every ``every``-th 200 response of a phase's log, decrypted
        after the phase (never inside the timed path)."""
        bits = []
        for entry in log[::every]:
            if entry.status == 200:
                name, _, x, _ = entry.item
                got = self.clients[name].decrypt(entry.body, count=1)
                bits.append(fg.precision_bits(self.model.forward_plain(x), got))
        return bits


@dataclass
class Entry:
    """One request: when it was due and sent, its latency, status, item and body."""

    due: float
    sent: float
    latency: float
    status: object
    item: tuple
    body: bytes


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: a generator that costs
    the shared machine a fraction of httpx's CPU per request (the server's latency, not
    the generator's, is what is measured)."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host.strip("[]"), int(port)
        self.idle: list = []

    async def _connection(self):
        """An idle connection used within IDLE_S (the server closes idle ones after 5 s),
        else a new one."""
        now = time.monotonic()
        while self.idle:
            reader, writer, used = self.idle.pop()
            if now - used < IDLE_S and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        """(status, body) of one POST; a connection is reused unless the server closes."""
        reader, writer = await self._connection()
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {OCTET}"
                     f"\r\nAuthorization: Bearer {token}\r\nContent-Length: {len(body)}"
                     f"\r\n\r\n".encode() + body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        length = int(re.search(r"content-length: *(\d+)", head).group(1))
        data = await reader.readexactly(length)
        if "connection: close" in head:
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return status, data

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def _send(http: RawClient, item, log: list, due: float | None = None) -> None:
    name, token, _, data = item
    t0 = time.perf_counter()
    try:
        status, body = await http.post(f"/v1/tenants/{name}/infer/clf", data, token)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        status, body = type(exc).__name__, b""
    log.append(Entry(t0 if due is None else due, t0, time.perf_counter() - t0, status, item,
                     body if status == 200 else b""))


async def open_loop(url: str, tenants: Tenants, rate: float, seconds: float) -> list:
    """Arrivals every 1/rate s for ``seconds``, each request its own task; the log."""
    log: list = []
    http = RawClient(url)
    tasks, start, i = [], time.perf_counter(), 0
    while (due := start + i / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        item = tenants.items[i % len(tenants.items)]
        tasks.append(asyncio.create_task(_send(http, item, log, due)))
        i += 1
    await asyncio.gather(*tasks)
    http.close()
    return log


async def closed_loop(url: str, tenants: Tenants, concurrency: int, seconds: float) -> list:
    """``concurrency`` requests in flight at all times for ``seconds``; the log."""
    log: list = []
    http = RawClient(url)
    counter = iter(range(10 ** 9))

    async def worker():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await _send(http, tenants.items[next(counter) % len(tenants.items)], log)
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    http.close()
    return log


def _ms(values, q) -> float | None:
    return round(float(np.percentile(values, q)) * 1e3, 2) if len(values) else None


def summarize(name: str, log: list, seconds: float, offered: float | None,
              bits: list, server: dict) -> dict:
    """Counts by status, rates, latency percentiles (ms) of the 200 responses, how late
    the generator sent (its own lag), checked precision, the server's view."""
    ok = np.array([e.latency for e in log if e.status == 200])
    statuses: dict = {}
    for e in log:
        statuses[str(e.status)] = statuses.get(str(e.status), 0) + 1
    lag = np.array([e.sent - e.due for e in log])
    return {"phase": name, "seconds": seconds, "offered_per_s": offered,
            "sent": len(log), "statuses": statuses,
            "ok_per_s": round(len(ok) / seconds, 2),
            **{f"p{q}_ms": _ms(ok, q) for q in (50, 90, 99)}, "max_ms": _ms(ok, 100),
            "send_lag_p99_ms": _ms(lag, 99), "checked": len(bits),
            "worst_bits": round(min(bits), 2) if bits else None, "server": server}


def server_histograms(url: str) -> dict:
    """Cumulative bucket counts of the server's Engine latency (submit to result) and of
    its HTTP time for the inference route."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out: dict = {"engine": {}, "http": {}}
    text = httpx.get(url + "/metrics", timeout=30).text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "fhe_engine_latency_seconds_bucket":
                out["engine"][float(s.labels["le"])] = s.value
            elif s.name == "fhe_http_request_seconds_bucket" and "infer" in s.labels["route"]:
                out["http"][float(s.labels["le"])] = s.value
    return out


def _bucket_quantiles(before: dict, after: dict) -> dict:
    """Upper bucket bounds (ms) holding the p50 and p99 of what happened in between."""
    out = {}
    for what in ("engine", "http"):
        les = sorted(after[what])
        counts = [after[what][le] - before[what].get(le, 0) for le in les]
        total = counts[-1] if counts else 0
        for q in (50, 99):
            le = next((le for le, c in zip(les, counts) if total and c >= total * q / 100),
                      None)
            out[f"{what}_p{q}_ms_at_most"] = None if le is None else le * 1e3
    return out


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) / 1024


def run(args) -> dict:
    client_cpus = _cpus(args.client_cpus)
    if client_cpus is not None:
        os.sched_setaffinity(0, client_cpus)
    params, model = build(args.params)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start_server(workdir, params, model, args)
        try:
            tenants = Tenants(url, params, model, args.tenants, pool=16)
            phases = run_phases(url, tenants, args)
            rss = rss_mb(proc.pid)
            alive = serving.HttpClient(url).health()
        finally:
            proc.terminate()
            code = proc.wait(120)
    return report(args, params, phases, rss, alive, code, load0)


def _phase(name: str, url: str, tenants: Tenants, loop, seconds: float,
           offered: float | None) -> dict:
    before = server_histograms(url)
    log = asyncio.run(loop)
    server = _bucket_quantiles(before, server_histograms(url))
    out = summarize(name, log, seconds, offered, tenants.check(log), server)
    print(json.dumps(out), flush=True)
    return out


def run_phases(url: str, tenants: Tenants, args) -> dict:
    asyncio.run(closed_loop(url, tenants, 1, 3))                          # warm-up
    idle = _phase("idle", url, tenants, closed_loop(url, tenants, 1, args.idle), args.idle,
                  None)
    cap = _phase("capacity", url, tenants, closed_loop(url, tenants, args.max_inflight, 10),
                 10, None)
    rate = args.rate or round(args.load * cap["ok_per_s"], 1)
    sustained = _phase("sustained", url, tenants, open_loop(url, tenants, rate, args.duration),
                       args.duration, rate)
    over = _phase("overload", url, tenants, open_loop(url, tenants, args.factor * rate,
                                                      args.duration),
                  args.duration, args.factor * rate)
    return {"idle": idle, "capacity": cap, "sustained": sustained, "overload": over}


def report(args, params, phases, rss, alive, code, load0) -> dict:
    idle, sus, over = phases["idle"], phases["sustained"], phases["overload"]
    other = {s: n for ph in (sus, over) for s, n in ph["statuses"].items()
             if s not in ("200", "429")}
    checks = {
        "sustained_without_429": sus["statuses"].get("429", 0) == 0,
        "overload_gets_429": over["statuses"].get("429", 0) > 0,
        "overload_p99_within_2x_idle_p99": over["p99_ms"] <= 2 * idle["p99_ms"],
        "overload_p99_within_2x_sustained_p99": over["p99_ms"] <= 2 * sus["p99_ms"],
        "only_200_and_429": not other,
        "results_correct": all((ph["worst_bits"] or BITS) >= BITS for ph in phases.values()),
        "server_alive_after": alive}
    return {"benchmark": "bench/serving_load.py", "argv": sys.argv[1:],
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": {"cpus": os.cpu_count(), "server_cpus": args.server_cpus,
                        "client_cpus": args.client_cpus, "loadavg_1min_before": round(load0, 2),
                        "loadavg_1min_after": round(os.getloadavg()[0], 2)},
            "params": args.params, "log_n": params.log_n, "tenants": args.tenants,
            "server": {"threads": args.server_threads or os.cpu_count(),
                       "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                       "max_queue": args.max_queue, "max_inflight": args.max_inflight,
                       "max_latency_ms": args.max_latency_ms,
                       "rss_mb_after": round(rss, 1), "exit_code": code},
            "phases": phases, "factor": args.factor,
            "overload_p99_over_idle_p99": round(over["p99_ms"] / idle["p99_ms"], 2),
            "overload_p99_over_sustained_p99": round(over["p99_ms"] / sus["p99_ms"], 2),
            "checks": checks, "passed": all(checks.values())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--params", default="small")
    p.add_argument("--tenants", type=int, default=8)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--idle", type=float, default=15.0)
    p.add_argument("--factor", type=float, default=3.0)
    p.add_argument("--load", type=float, default=0.6, help="sustained rate / capacity")
    p.add_argument("--rate", type=float, default=None, help="sustained rate (req/s)")
    p.add_argument("--max-batch", type=int, default=4)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-queue", type=int, default=8)
    p.add_argument("--max-inflight", type=int, default=4)
    p.add_argument("--max-latency-ms", type=float, default=None,
                   help="the server's latency target (fhe-gpu serve --max-latency-ms)")
    p.add_argument("--server-threads", type=int, default=None,
                   help="the server's kernel threads (NUMBA_NUM_THREADS)")
    p.add_argument("--server-cpus", default=None,
                   help='pin the server to these CPUs ("0,1" or "0-1"; default: no pinning)')
    p.add_argument("--client-cpus", default=None,
                   help="pin the load generator to these CPUs (with --server-cpus: the "
                        "generator off the server's cores, as on a separate machine)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    out = run(args)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

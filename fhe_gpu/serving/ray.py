"""Engine replicas on a Ray cluster: a Ray Serve deployment with tenant-affine routing.

    import ray
    ray.init()                                          # or an existing cluster's address
    backend = fhe_gpu.serving.ray.deploy(params, {"clf": model}, replicas=2)
    key_id = await backend.register("alice", evk_bytes)
    out = await backend.infer("alice", "clf", ct_bytes)
    app = fhe_gpu.serving.http.create_app(backend)      # the same HTTP API (fhe-gpu serve --ray)

Each replica (:class:`EngineReplica`) holds one :class:`~fhe_gpu.engine.Engine` (one
replica per GPU with ``gpus_per_replica=1``, else per CPU worker), which batches the
requests it receives across tenants. Routing uses Serve's model multiplexing with the
tenant id as the multiplexed model id: Serve sends a tenant's requests to the replica that
has the tenant "loaded" (its keys registered in that replica's Engine), and loads it on the
replica with the fewest tenants the first time, so each tenant's keys live on one replica.
Loading a tenant reads its keys from :class:`TenantDirectory`, a named actor that keeps
every registered tenant's key bytes: a replica that replaces a failed one, or that gets a
tenant because its replica is saturated, loads the keys from there. Serve unloads the
least recently used tenant past ``MAX_TENANTS_PER_REPLICA`` (its keys leave that Engine).

Requests are idempotent, so :class:`RayBackend` retries one whose replica died (bounded):
killing a replica loses no accepted request. Replicas report their Engine's tenants,
loads and metrics to the directory every ``REPORT_INTERVAL_S`` and right after a change
(:meth:`RayBackend.replica_stats`, what ``/metrics`` shows with a ``replica`` label), and
answer :meth:`EngineReplica.stats` directly.

Limitation: a tenant's key replacement reaches the replica that serves it; a replica that
loaded the old keys earlier (after a failover) keeps them until Serve unloads the tenant
there.
"""
from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections import Counter

import ray
from ray import serve

from ..ckks import Parameters
from ..engine import Engine, Model
from ..errors import EngineClosedError, FHEError, KeyMissingError

#: the Ray namespace of the directory actor; the Serve application's default name
NAMESPACE, APP = "fhe_gpu", "fhe_gpu"
#: tenants a replica keeps loaded (Serve's multiplexing LRU)
MAX_TENANTS_PER_REPLICA = 64
#: seconds between a replica's reports to the directory, and from a change (a request
#: finished, a tenant loaded) to its report; reports older than REPORT_STALE_S (a dead
#: replica's) are dropped
REPORT_INTERVAL_S, REPORT_DELAY_S, REPORT_STALE_S = 0.5, 0.05, 5.0
#: errors of a lost replica after which a request is retried (it is idempotent)
RETRIED = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


@ray.remote(num_cpus=0)
class TenantDirectory:
    """Registered tenants' evaluation-key bytes (what replicas load tenants from) and the
    replicas' latest reports."""

    def __init__(self):
        self._keys: dict[str, bytes] = {}
        self._reports: dict[str, dict] = {}

    def put(self, tenant: str, data: bytes) -> None:
        """Store ``tenant``'s key bytes."""
        self._keys[tenant] = data

    def get(self, tenant: str):
        """``tenant``'s key bytes, or None."""
        return self._keys.get(tenant)

    def delete(self, tenant: str) -> None:
        """Forget ``tenant``."""
        self._keys.pop(tenant, None)

    def tenants(self) -> list[str]:
        """Registered tenants."""
        return sorted(self._keys)

    def report(self, replica: str, stats: dict) -> None:
        """Record a replica's latest stats."""
        self._reports[replica] = stats

    def reports(self) -> dict:
        """{replica: its latest stats}, for replicas that reported within
        REPORT_STALE_S."""
        now = time.time()
        return {r: s for r, s in self._reports.items() if now - s["time"] < REPORT_STALE_S}


class _Loaded:
    """A tenant loaded on a replica; unloading it (Serve's LRU) drops its keys there."""

    def __init__(self, replica: "EngineReplica", tenant: str):
        self.replica, self.tenant, self.done = replica, tenant, False

    def __del__(self):
        if not self.done:
            self.done = True
            self.replica._unload(self.tenant)


class EngineReplica:
    """One Serve replica: an Engine, tenants loaded through Serve's multiplexing."""

    def __init__(self, params_bytes: bytes, model_files: dict, engine_options: dict):
        params = Parameters.from_bytes(params_bytes)
        models = {name: Model.load(io.BytesIO(data)) for name, data in model_files.items()}
        self.engine = Engine(params, models, **engine_options)
        self.replica = serve.get_replica_context().replica_tag
        self.actor_name = ray.get_runtime_context().get_actor_name()
        self.directory = ray.get_actor(_directory_name(), namespace=NAMESPACE)
        self.loads: Counter = Counter()
        self._staged: set[str] = set()
        self._stop, self._changed = threading.Event(), threading.Event()
        threading.Thread(target=self._report_loop, daemon=True).start()

    @serve.multiplexed(max_num_models_per_replica=MAX_TENANTS_PER_REPLICA)
    async def _tenant(self, tenant: str) -> _Loaded:
        """Load ``tenant`` on this replica (keys from the directory), once."""
        if tenant in self._staged:
            self._staged.discard(tenant)
        else:
            data = await self.directory.get.remote(tenant)
            if data is None:
                raise KeyMissingError(f"tenant {tenant!r} is not registered")
            await asyncio.to_thread(self.engine.register_tenant, tenant, data)
        self.loads[tenant] += 1
        self._changed.set()
        return _Loaded(self, tenant)

    def _unload(self, tenant: str) -> None:
        try:
            self.engine.unregister_tenant(tenant)
        except FHEError:
            pass

    async def register(self, evk_bytes: bytes) -> bytes:
        """Validate the keys of the request's tenant (its multiplexed id) in this
        replica's Engine, store them in the directory, load the tenant here."""
        tenant = serve.get_multiplexed_model_id()
        key_id = await asyncio.to_thread(self.engine.register_tenant, tenant, evk_bytes)
        await self.directory.put.remote(tenant, evk_bytes)
        self._staged.add(tenant)
        await self._tenant(tenant)
        self._staged.discard(tenant)
        return key_id

    async def unregister(self) -> None:
        """Forget the request's tenant in the directory and on this replica."""
        tenant = serve.get_multiplexed_model_id()
        await self.directory.delete.remote(tenant)
        self._unload(tenant)

    async def infer(self, model: str, ct_bytes: bytes, timeout: float | None = None) -> bytes:
        """The result bytes of one request of the request's tenant."""
        tenant = serve.get_multiplexed_model_id()
        await self._tenant(tenant)
        try:
            fut = await asyncio.to_thread(self.engine.submit, tenant, model, ct_bytes,
                                          timeout)
            return await asyncio.wrap_future(fut)
        finally:
            self._changed.set()

    def stats(self) -> dict:
        """This replica: its id, actor name, pid, the time, the tenants its Engine holds,
        how often each was loaded here, the Engine's metrics (dict and Prometheus text)."""
        return {"replica": self.replica, "actor": self.actor_name, "pid": os.getpid(),
                "time": time.time(), "tenants": self.engine.tenants, "loads": dict(self.loads),
                "metrics": self.engine.metrics(),
                "metrics_text": self.engine.metrics_text().decode()}

    def _report_loop(self) -> None:
        """Report every REPORT_INTERVAL_S, and within REPORT_DELAY_S of a change."""
        while not self._stop.is_set():
            self._changed.wait(REPORT_INTERVAL_S)
            time.sleep(REPORT_DELAY_S)
            self._changed.clear()
            try:
                self.directory.report.remote(self.replica, self.stats())
            except Exception:                  # noqa: BLE001 (reporting is best effort)
                pass

    def __del__(self):
        self._stop.set()
        self.engine.close()


def _directory_name() -> str:
    return os.environ.get("FHE_GPU_RAY_DIRECTORY", "fhe_gpu_tenants")


def _model_bytes(model: Model) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def deploy(params: Parameters, models: dict, *, replicas: int = 2,
           engine_options: dict | None = None, cpus_per_replica: float = 1.0,
           gpus_per_replica: float = 0.0, max_ongoing_requests: int = 1024,
           name: str = APP) -> "RayBackend":
    """Deploy ``replicas`` Engine replicas serving ``models`` (as Serve application
    ``name``, without Serve's HTTP proxy) on the Ray cluster this process is connected to
    (``ray.init`` first; a local one is started otherwise). ``engine_options``: keyword
    arguments of :class:`~fhe_gpu.engine.Engine` (backend, max_batch, max_queue...).
    ``max_ongoing_requests``: requests a replica accepts at once (its Engine queues and
    batches them; keep it at least the Engine's max_queue so that Serve does not spill a
    tenant to another replica while its own has room)."""
    if not ray.is_initialized():
        ray.init()
    directory = TenantDirectory.options(name=_directory_name(), namespace=NAMESPACE,
                                        get_if_exists=True, lifetime=None).remote()
    serve.start(proxy_location="Disabled")
    options = {"num_cpus": cpus_per_replica}
    if gpus_per_replica:
        options["num_gpus"] = gpus_per_replica
    app = serve.deployment(EngineReplica).options(
        num_replicas=int(replicas), max_ongoing_requests=int(max_ongoing_requests),
        ray_actor_options=options, graceful_shutdown_timeout_s=60,
        logging_config={"log_level": "WARNING", "enable_access_log": False})
    files = {n: _model_bytes(m) for n, m in models.items()}
    handle = serve.run(app.bind(params.to_bytes(), files, dict(engine_options or {})),
                       name=name, route_prefix=None)
    return RayBackend(handle, params, models, directory, name)


class RayBackend:
    """The HTTP app's backend (see :mod:`fhe_gpu.serving.backend`) over a deployment.

    ``retries``: attempts after a lost replica (``RETRIED`` errors), waiting
    ``retry_wait_s`` doubled each time."""

    def __init__(self, handle, params, models: dict, directory, name: str = APP,
                 retries: int = 8, retry_wait_s: float = 0.25):
        self.handle, self.params, self.models = handle, params, dict(models)
        self.directory, self.name = directory, name
        self.rotations = sorted({s for m in models.values() for s in m.rotations(params)})
        self.retries, self.retry_wait_s = int(retries), float(retry_wait_s)
        self.retried = 0
        self.closed = False

    async def _call(self, tenant: str, method: str, *args):
        if self.closed:
            raise EngineClosedError("the Ray backend is closed")
        for attempt in range(self.retries + 1):
            try:
                h = self.handle.options(multiplexed_model_id=tenant, method_name=method)
                return await h.remote(*args)
            except RETRIED:
                if attempt == self.retries:
                    raise
                self.retried += 1
                await asyncio.sleep(self.retry_wait_s * 2 ** attempt)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                raise cause if isinstance(cause, Exception) else exc from None

    async def register(self, tenant: str, evk_bytes: bytes) -> bytes:
        """Validate and store ``tenant``'s keys, loading them on one replica."""
        return await self._call(tenant, "register", evk_bytes)

    async def unregister(self, tenant: str) -> None:
        """Forget ``tenant`` (the directory, and the replica that serves it)."""
        await self._call(tenant, "unregister")

    async def infer(self, tenant: str, model: str, ct_bytes: bytes,
                    timeout: float | None = None) -> bytes:
        """The result bytes of one request, retried if its replica is lost."""
        return await self._call(tenant, "infer", model, ct_bytes, timeout)

    async def replica_stats(self) -> dict:
        """{replica: its latest report} (see :meth:`EngineReplica.stats`)."""
        return await self.directory.reports.remote()

    async def metrics_text(self) -> bytes:
        """Every replica's Engine metrics, each sample labelled with its replica."""
        reports = await self.replica_stats()
        return merge_metrics({r: s["metrics_text"] for r, s in reports.items()})

    async def ready(self) -> bool:
        """True while the Serve application is running."""
        try:
            status = await asyncio.to_thread(serve.status)
            return status.applications[self.name].status == "RUNNING"
        except (KeyError, AttributeError):
            return False

    async def close(self) -> None:
        """Delete the application: Serve lets every replica finish its requests."""
        self.closed = True
        await asyncio.to_thread(serve.delete, self.name)


def merge_metrics(texts: dict) -> bytes:
    """One Prometheus exposition of several of the same metrics, {label value: text}:
    every sample gains a ``replica`` label (``_created`` samples are dropped)."""
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.utils import floatToGoString

    families: dict = {}
    for replica, text in sorted(texts.items()):
        for fam in text_string_to_metric_families(text):
            name = fam.name + "_total" if fam.type == "counter" else fam.name
            entry = families.setdefault(name, (fam.type, fam.documentation, []))
            entry[2].extend((s.name, dict(s.labels, replica=replica), s.value)
                            for s in fam.samples if not s.name.endswith("_created"))
    lines = []
    for name, (kind, doc, samples) in families.items():
        if not samples:
            continue
        lines += [f"# HELP {name} {_escape(doc, help_text=True)}", f"# TYPE {name} {kind}"]
        for sample, labels, value in samples:
            body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{sample}{{{body}}} {floatToGoString(value)}")
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _escape(text: str, help_text: bool = False) -> str:
    text = str(text).replace("\\", r"\\").replace("\n", r"\n")
    return text if help_text else text.replace('"', r'\"')

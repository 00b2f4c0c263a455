"""Collection on a Ray cluster: the collector's episodes played by env workers (Ray actors) on many nodes.

The driver keeps everything that makes a collection a collection: the job queue, the tree budget, the
retries and the one store writer, so results stream into the same store with the same guarantees (atomic
shards, resume, no duplicates). Only the playing of episodes moves: each worker is an async actor that
runs many episodes concurrently on its own event loop, each on an env from its own pool, against its own
copy of the policy (a policy server's client, or a scripted policy; a model loaded in the driver cannot
travel). Workers ask Ray for the env family's custom resources (``Env.node_resources``: ``chromium``,
``bwrap``, ``docker``, ``xvfb``), so a browser env lands only on nodes started with
``--resources='{"chromium": N}'``, at most N workers each.

A worker (or its node) that dies mid-episode ends its episodes as ``failed`` with cause ``worker_lost`` and
the reason; ``env_retries`` re-runs them like any infrastructure failure, the dead worker is replaced where
the cluster has room, and the run goes on. The driver dying is a resume: its store holds every episode it
committed. Nothing here is imported unless ``--ray`` is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentenv.collector import CollectConfig, Collector, EnvCreationError
from agentenv.threads import DaemonThreadPool
from agentenv.trajectory import Trajectory

if TYPE_CHECKING:
    from agentenv.collector import _Job

log = logging.getLogger("agentenv.ray")


@dataclass
class RayOptions:
    """Where and how wide: ``address`` is ``local`` (a Ray instance started in this process), ``auto`` (the
    cluster that ``ray start`` runs on this machine) or the head's ``HOST:PORT``. ``workers`` defaults to as
    many as the cluster can place (one per CPU, bounded by the env's custom resources); the collector's
    concurrency is split evenly between them."""

    address: str = "local"
    workers: int | None = None
    cpus_per_worker: float = 1.0
    #: custom resources every worker asks for on top of the env's own
    resources: dict[str, float] = field(default_factory=dict)
    #: seconds a new worker has to be placed and build its first env
    start_timeout: float = 120.0
    #: ``ray.init`` options (e.g. ``{"runtime_env": {...}}``) for a driver that is not yet connected
    init: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 0 or self.start_timeout <= 0:
            raise ValueError("cpus_per_worker must be >= 0 and start_timeout > 0")


def connect(options: RayOptions) -> None:
    """Connect this process to Ray once (later calls reuse the connection)."""
    import ray

    if ray.is_initialized():
        return
    address = None if options.address == "local" else options.address
    ray.init(address=address, log_to_driver=False, include_dashboard=False, **options.init)


class EpisodeWorker:
    """One env worker (a Ray actor): plays the jobs it is given, up to its concurrency at once, with the
    collector's own episode code; its envs are created on its node and reused across episodes."""

    def __init__(self, config: CollectConfig, policy: Any, teacher: Any, env_factory: Any, tree_mode: bool,
                 concurrency: int):
        self.env_factory = env_factory
        self.collector = Collector(config, policy, None, teacher=teacher, env_factory=env_factory)
        self.collector.tree_mode = tree_mode
        self.concurrency = concurrency
        self._pool: DaemonThreadPool | None = None

    def configure(self, config: CollectConfig, policy: Any, teacher: Any, tree_mode: bool) -> None:
        """Take the next collection on the same env (new seeds, the policy's new version, another teacher),
        keeping the warm envs: a browser or a sandbox pool is not started again for every training step."""
        old = self.collector
        self.collector = Collector(config, policy, None, teacher=teacher, env_factory=self.env_factory)
        self.collector.tree_mode = tree_mode
        self.collector._clone_mode = old._clone_mode
        self.collector._spare_envs = old._spare_envs

    def _loop_ready(self) -> None:
        if self._pool is None:  # sync envs run in threads: K of them at once, as in a local collection
            self._pool = DaemonThreadPool(max_workers=self.concurrency + 4, thread_name_prefix="agentenv-env")
            asyncio.get_running_loop().set_default_executor(self._pool)

    async def ready(self) -> dict[str, Any]:
        """Build the first env (a configuration error surfaces here) and say where this worker runs."""
        import ray

        self._loop_ready()
        env = await self.collector._new_env()
        if env is None:
            raise EnvCreationError(self.collector._env_error)
        self.collector._spare_envs.append(env)
        clone_mode = str(getattr(getattr(env, "unwrapped", env), "clone_mode", "replay"))
        self.collector._clone_mode = clone_mode
        return {"clone_mode": clone_mode, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    async def run(self, job: _Job, version: int, snapshots: dict[str, dict[int, Any]]) -> tuple[Trajectory, dict]:
        """Play one episode; returns it and the snapshots it kept (a tree's children may restore them)."""
        self._loop_ready()
        collector = self.collector
        collector.policy.version = version
        collector._snapshots.update(snapshots)
        try:
            traj = await collector.execute(job)
            return traj, collector._snapshots.pop(traj.trajectory_id, {})
        finally:
            for key in snapshots:
                collector._snapshots.pop(key, None)

    async def close(self) -> None:
        for env in self.collector._spare_envs:
            self.collector._discard(env)
        self.collector._spare_envs.clear()
        await self.collector._finish_closing(timeout=10)


@dataclass
class _Slot:
    handle: Any = None
    where: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RayEpisodes:
    """The collector's :class:`~agentenv.collector.EpisodeRunner` on a Ray cluster (see the module docstring)."""

    def __init__(self, options: RayOptions | None = None, *, keep_workers: bool = False):
        """``keep_workers``: the workers (and their warm envs) outlive a collection and serve the next one
        on the same env, as a training run's steps do; :meth:`shutdown` ends them."""
        self.options = options or RayOptions()
        self.keep_workers = keep_workers
        self._key: tuple[Any, ...] | None = None
        self.slots: list[_Slot] = []
        #: every worker started, replacements included: where it ran (``pid``, ``node``, ``clone_mode``)
        self.started: list[dict[str, Any]] = []
        #: forks sent with their parent's snapshot (restored on whichever worker plays them, not re-played)
        self.snapshots_sent = 0
        self.lost = 0
        self._collector: Collector | None = None
        self._actor_class: Any = None
        self._resources: dict[str, float] = {}
        self._per_worker = 1

    # ----- start and stop ------------------------------------------------------------------------------
    async def start(self, collector: Collector) -> str:
        import ray

        self._check_portable(collector)
        connect(self.options)  # on the loop's thread, usually the main one, where Ray installs its signal handlers
        self._collector = collector
        cfg = collector.config
        key = (collector.env_id, repr(sorted(cfg.env_kwargs.items())), collector._env_factory_given, cfg.concurrency)
        if self._key == key and any(s.handle is not None for s in self.slots):
            return await self._reuse(collector)
        if self.slots:
            await self.shutdown()
        self._key = key
        self._resources = {**self._env_resources(collector), **self.options.resources}
        available = await asyncio.to_thread(ray.cluster_resources)
        missing = {k: v for k, v in self._resources.items() if available.get(k, 0) < v}
        if missing:
            raise EnvCreationError(
                f"{collector.env_id} needs the Ray resources {missing} on a node and the cluster offers "
                f"{ {k: available.get(k, 0) for k in missing} }: start the nodes that can host it with "
                f"ray start --resources='{{\"{next(iter(missing))}\": N}}' (N workers per node)")
        workers = self.options.workers or self._placeable(available)
        self._per_worker = max(1, math.ceil(cfg.concurrency / workers))
        self._actor_class = ray.remote(EpisodeWorker)
        self.slots = [_Slot() for _ in range(workers)]
        started = await asyncio.gather(*(self._start_slot(slot) for slot in self.slots), return_exceptions=True)
        errors = [e for e in started if isinstance(e, BaseException)]
        if len(errors) == len(started):
            await self.shutdown()
            raise errors[0] if isinstance(errors[0], EnvCreationError) else EnvCreationError(
                f"no Ray worker started: {errors[0]!r}")
        for error in errors:
            log.warning("a Ray env worker did not start (%s); collecting with the others", error)
        live = [s for s in self.slots if s.handle is not None]
        modes = {s.where["clone_mode"] for s in live}
        log.info("collecting on %d Ray workers (%d episodes each at once) on %d node(s)", len(live),
                 self._per_worker, len({s.where["node"] for s in live}))
        return modes.pop() if len(modes) == 1 else "replay"

    async def _reuse(self, collector: Collector) -> str:
        """Hand the kept workers the new collection; one that does not answer is started again."""
        cfg = dataclasses.replace(collector.config, progress="off")
        for slot in self.slots:
            slot.lock = asyncio.Lock()  # each collection runs its own event loop

        async def configure(slot: _Slot) -> None:
            try:
                await asyncio.wait_for(_await(slot.handle.configure.remote(
                    cfg, collector.policy, collector.teacher, collector.tree_mode)), self.options.start_timeout)
            except Exception as e:
                log.warning("a kept Ray env worker did not take the new collection (%r); starting another", e)
                await self._replace(slot, slot.handle)

        await asyncio.gather(*(configure(s) for s in self.slots if s.handle is not None))
        modes = {s.where["clone_mode"] for s in self.slots if s.handle is not None}
        return modes.pop() if len(modes) == 1 else "replay"

    def _env_resources(self, collector: Collector) -> dict[str, float]:
        """The env's ``node_resources``: from the registry, or from a factory that is an env class or a
        ``functools.partial`` of one."""
        if collector._env_factory_given:
            factory = collector._env_factory
            target, kwargs = getattr(factory, "func", factory), getattr(factory, "keywords", None) or {}
            method = getattr(target, "node_resources", None)
            return dict(method(kwargs)) if callable(method) else {}
        from agentenv.registry import node_resources

        return node_resources(collector.env_id, collector.config.env_kwargs)

    def _placeable(self, available: dict[str, float]) -> int:
        """How many workers the cluster can hold: its CPUs, and each custom resource the env needs."""
        counts = [int(available.get(name, 0) // amount) for name, amount in self._resources.items() if amount > 0]
        if self.options.cpus_per_worker > 0:
            counts.append(int(available.get("CPU", 1) // self.options.cpus_per_worker))
        return max(1, min(counts, default=1))

    def _check_portable(self, collector: Collector) -> None:
        from ray import cloudpickle

        for what, value in (("policy", collector.policy), ("teacher", collector.teacher)):
            if value is None:
                continue
            try:
                cloudpickle.dumps(value)
            except Exception as e:
                raise ValueError(f"the {what} {getattr(value, 'name', value)!r} cannot be sent to Ray workers "
                                 f"({e!r}): serve the model (agentenv serve-policy) and collect with its URL, "
                                 "which every worker reaches") from e

    async def _start_slot(self, slot: _Slot) -> None:
        """Start (or restart) the slot's worker and wait until it has built its first env."""
        collector = self._collector
        assert collector is not None
        cfg = collector.config
        options: dict[str, Any] = {"num_cpus": self.options.cpus_per_worker, "max_concurrency": self._per_worker + 4,
                                   "max_restarts": 0, "scheduling_strategy": "SPREAD"}
        if self._resources:
            options["resources"] = dict(self._resources)
        handle = self._actor_class.options(**options).remote(
            dataclasses.replace(cfg, progress="off"), collector.policy, collector.teacher,
            collector._env_factory if collector._env_factory_given else None, collector.tree_mode,
            self._per_worker)
        try:
            where = await asyncio.wait_for(_await(handle.ready.remote()), self.options.start_timeout)
        except TimeoutError:
            _kill(handle)
            raise TimeoutError(f"a Ray env worker asking for {self._resources or 'no custom resources'} was not "
                               f"placed and ready within {self.options.start_timeout:g} s") from None
        except Exception as e:
            _kill(handle)
            cause = getattr(e, "cause", None)
            if isinstance(cause, EnvCreationError):
                raise cause from None
            raise
        slot.handle, slot.where = handle, where
        self.started.append(where)

    async def stop(self) -> None:
        """The collection is over: end the workers, unless they are kept for the next one."""
        if not self.keep_workers:
            await self.shutdown()

    async def shutdown(self) -> None:
        import ray

        handles = [s.handle for s in self.slots if s.handle is not None]
        if handles:
            await asyncio.wait([asyncio.ensure_future(_await(h.close.remote())) for h in handles], timeout=15)
        for handle in handles:
            ray.kill(handle)
        for slot in self.slots:
            slot.handle = None
        self.slots, self._key = [], None

    # ----- episodes ------------------------------------------------------------------------------------
    async def run(self, slot_index: int, job: _Job) -> Trajectory:
        collector = self._collector
        assert collector is not None
        slot = self._slot_for(slot_index)
        if slot is None:
            return self._lost(job, "no Ray env worker is left (all died and none could be started again)")
        handle, where = slot.handle, slot.where
        snapshots: dict[str, dict[int, Any]] = {}
        if job.parent is not None and job.branch is not None:
            kept = collector._snapshots.get(job.parent.trajectory_id, {}).get(job.branch.turn)
            if kept is not None:
                snapshots[job.parent.trajectory_id] = {job.branch.turn: kept}
                self.snapshots_sent += 1
        cfg = collector.config
        deadline = cfg.episode_timeout + 2 * cfg.env_timeout + 60  # the worker enforces the episode's own
        sent = time.monotonic()
        try:
            traj, kept = await asyncio.wait_for(
                _await(handle.run.remote(job, collector.policy.version, snapshots)), deadline)
        except Exception as e:
            if _is_task_error(e):  # the episode code raised in the worker: a bug, not a lost worker
                raise RuntimeError(f"Ray worker on node {str(where.get('node', '?'))[:12]}: {e}") from None
            reason = (f"no answer within {deadline:g} s" if isinstance(e, TimeoutError)
                      else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            await self._replace(slot, handle)
            node = str(where.get("node", ""))
            return self._lost(job, f"Ray env worker (pid {where.get('pid', '?')}, node {node[:12]}) was lost: "
                                   f"{reason}", node)
        if kept:
            collector._snapshots[traj.trajectory_id] = kept
        traj.extra["ray_node"] = str(slot.where.get("node", ""))
        #: the driver's wait for the episode: its own duration plus what Ray adds (scheduling, transfers)
        traj.extra["ray_round_trip_s"] = time.monotonic() - sent
        return traj

    def _slot_for(self, index: int) -> _Slot | None:
        slot = self.slots[index % len(self.slots)]
        if slot.handle is not None:
            return slot
        live = [s for s in self.slots if s.handle is not None]
        return live[index % len(live)] if live else None

    def _lost(self, job: _Job, error: str, node: str = "") -> Trajectory:
        assert self._collector is not None
        self.lost += 1
        traj = self._collector._new_trajectory(job)
        traj.status, traj.failure_cause, traj.error = "failed", "worker_lost", error
        traj.extra["ray_node"] = node
        traj.finished_at = time.time()
        log.warning("%s: %s", traj.trajectory_id, error)
        return traj

    async def _replace(self, slot: _Slot, dead: Any) -> None:
        """Start a new worker in a dead one's place, once (the other episodes it held wait on the lock and
        find it replaced); a slot whose worker cannot be placed again stays empty."""
        async with slot.lock:
            if slot.handle is not dead:
                return
            _kill(dead)
            slot.handle = None
            try:
                await self._start_slot(slot)
                log.warning("replaced a lost Ray env worker (now pid %s on node %s)", slot.where.get("pid"),
                            str(slot.where.get("node"))[:12])
            except Exception as e:
                log.error("could not replace a lost Ray env worker: %r", e)


async def _await(ref: Any) -> Any:
    return await ref


def _kill(handle: Any) -> None:
    import ray

    try:
        ray.kill(handle)
    except Exception as e:  # already gone
        log.debug("ray.kill: %r", e)


def _is_task_error(e: BaseException) -> bool:
    from ray.exceptions import RayTaskError

    return isinstance(e, RayTaskError)

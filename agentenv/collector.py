"""The collector: N tasks x G samples over K concurrent episodes against one policy, on asyncio.

Episodes are scheduled one by one: a worker that finishes an episode takes the next job at once, so a
slow episode never holds a batch back. Env calls run off the event loop (async twins), every call has a
timeout, and every episode runs inside a failure boundary: an env that raises or hangs, or a policy call
that fails, ends that episode as ``failed`` with its cause and error recorded, and the run goes on.
Finished episodes are group-committed to the store by one writer task (each write is one atomic shard),
so a killed collection keeps every committed episode, and re-running it skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import time
import traceback
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from agentenv.budget import GroupLedger, slot_id
from agentenv.env import Env, GraderError
from agentenv.hooks import BranchRequest, BranchStrategy, TeacherMixing, TreeStrategy
from agentenv.ledger import Ledger
from agentenv.messages import Observation, cap_observation, content_text
from agentenv.policy import ModelError, Policy, PolicyOutput, PolicyRequest, PolicyUnavailable, SamplingParams
from agentenv.progress import CollectProgress
from agentenv.prompting import Conversation, PromptConfig, new_prompt_tokens
from agentenv.registry import make, resolve_id
from agentenv.summary import CollectSummary
from agentenv.threads import DaemonThreadPool
from agentenv.trajectory import Trajectory, Turn, is_policy_cause

log = logging.getLogger("agentenv.collect")

#: reset-info keys copied into ``Trajectory.extra`` (the summary reports success per task type; a dream
#: names the real episode it started from)
RECORDED_RESET_INFO = ("task_type", "task", "problem", "real_seed", "real_task_id", "real_trajectory_id")
#: infrastructure failures that ``env_retries`` re-runs on a fresh env (a lost worker: its process or node died)
RETRIED_CAUSES = ("env_error", "env_timeout", "reset_timeout", "worker_lost", "grader_error", "policy_unavailable",
                  "policy_timeout")


class EpisodeRunner(Protocol):
    """Plays episodes somewhere else (another process, a Ray cluster) for a :class:`Collector`, which keeps
    the scheduling, the tree budget and the store; see :mod:`agentenv.ray_collect`."""

    async def start(self, collector: Collector) -> str:
        """Start the workers, each with one env built; returns the env's ``clone_mode``. Raises
        :class:`EnvCreationError` when the env cannot be built."""
        ...

    async def run(self, slot: int, job: _Job) -> Trajectory:
        """Play ``job`` (from the collector's worker ``slot``); a lost worker is a failed episode."""
        ...

    async def stop(self) -> None: ...


@dataclass
class CollectConfig:
    env_id: str
    n_tasks: int = 1
    group_size: int = 1
    concurrency: int = 8
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    #: seconds allowed for one env call (step, expert) and for one policy call
    env_timeout: float = 120.0
    #: seconds allowed for an env's reset (a boot: a container, a browser); None: ``env_timeout``
    reset_timeout: float | None = None
    policy_timeout: float = 600.0
    episode_timeout: float = 3600.0
    #: infrastructure failures (env errors/timeouts) re-run on a fresh env up to this many times
    env_retries: int = 0
    #: a safety cap on turns on top of the env's own limits (the episode ends truncated)
    max_turns: int = 1000
    #: how long the store may keep failing (a full disk, EIO) before the run stops with
    #: :class:`StoreUnavailable`; meanwhile no new episode starts and finished ones wait, in memory, in a
    #: queue of at most ``max(2 * concurrency, 64)`` episodes
    store_stall_timeout: float = 300.0
    #: each observation message's text is cut to this many characters (head and tail kept, the cut marked)
    #: before the policy or the store sees it, so a huge page or log bounds the prompt, the row and memory
    max_observation_chars: int | None = 100_000
    #: take the resource census (:mod:`agentenv.census`) before and after the run: whatever the run started
    #: or opened and did not release (processes, fds, mounts, temp dirs, containers) is logged and reported
    #: in the summary (``census``)
    census: bool = False
    progress: str = "auto"

    def __post_init__(self) -> None:
        for name in ("n_tasks", "group_size", "concurrency", "max_turns"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("env_timeout", "policy_timeout", "episode_timeout", "store_stall_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.env_retries < 0:
            raise ValueError(f"env_retries must be >= 0, got {self.env_retries}")
        if self.max_observation_chars is not None and self.max_observation_chars < 100:
            raise ValueError(f"max_observation_chars must be >= 100 (or None), got {self.max_observation_chars}")
        if self.reset_timeout is None:
            self.reset_timeout = self.env_timeout
        elif self.reset_timeout <= 0:
            raise ValueError(f"reset_timeout must be > 0, got {self.reset_timeout}")

    def run_identity(self) -> dict[str, Any]:
        """What must match for a store to be resumed by this collection."""
        sampling = asdict(self.sampling)
        if not sampling["stop"]:  # added later: stores written before it had no such key
            del sampling["stop"]
        return {"env_id": self.env_id, "env_kwargs": self.env_kwargs, "seed": self.seed,
                "group_size": self.group_size, "sampling": sampling, "prompt": asdict(self.prompt)}


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    task_index: int = field(compare=False)
    sample_index: int = field(compare=False)
    attempt: int = field(default=0, compare=False)
    parent: Trajectory | None = field(default=None, compare=False)
    branch: BranchRequest | None = field(default=None, compare=False)
    child_index: int = field(default=0, compare=False)
    #: a tree rollout's episode: its id (attempt 0) and kind ("init", "branch", "global_refill", "pilot")
    tid: str = field(default="", compare=False)
    kind: str = field(default="init", compare=False)


class EpisodeFailure(Exception):
    def __init__(self, cause: str, error: str):
        super().__init__(error)
        self.cause, self.error = cause, error


class BranchingError(RuntimeError):
    """A tree rollout was asked of an env that cannot be cloned (``clone_mode = "none"``)."""


class StoreUnavailable(OSError):
    """The store kept failing (a full disk, an I/O error) for longer than ``store_stall_timeout``: the run
    stopped. Every committed episode is intact; the rest are closed in the ledger as cancelled and run
    again when the same collection is resumed."""


class EnvCreationError(RuntimeError):
    """The env could not be created even once at the start of a run: a configuration error (bad id or
    keyword arguments, a missing dependency), so nothing is run or written."""


class Collector:
    """Runs a collection; see the module docstring. ``store`` may be None (results kept in memory)."""

    def __init__(
        self,
        config: CollectConfig,
        policy: Policy,
        store: Any = None,
        *,
        branching: BranchStrategy | None = None,
        teacher: TeacherMixing | None = None,
        env_factory: Callable[[], Env] | None = None,
        on_turn: Callable[[Trajectory, Turn], None] | None = None,
        remote: EpisodeRunner | None = None,
    ):
        if remote is not None and on_turn is not None:
            raise ValueError("on_turn sees turns as they are played, in this process; episodes that run on other "
                             "machines (remote=) report whole episodes only")
        self.config = config
        self.policy = policy
        self.store = store
        self.branching = branching
        #: a budgeted tree rollout (exact episodes per group); plain ``BranchStrategy`` hooks add children freely
        self.tree = branching if isinstance(branching, TreeStrategy) else None
        #: tree-rollout episodes carry tree ids and keep snapshots (set apart from ``tree`` for remote workers,
        #: which play a tree's episodes without its strategy)
        self.tree_mode = self.tree is not None
        self.remote = remote
        #: the store's work ledger (:mod:`agentenv.ledger`), open while a run writes to a store that keeps one
        self.ledger: Ledger | None = None
        self._groups: dict[int, GroupLedger] = {}
        self._finished: list[Trajectory] = []
        self._snapshots: dict[str, dict[int, Any]] = {}
        self._clone_mode = "replay"
        self.teacher = teacher
        self.on_turn = on_turn
        self.env_id = config.env_id if env_factory else resolve_id(config.env_id)
        self._env_factory = env_factory or (lambda: make(self.env_id, **config.env_kwargs))
        self._env_factory_given = env_factory is not None
        self._order = itertools.count()
        self.trajectories: list[Trajectory] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._env_error = ""
        self._spare_envs: list[Env] = []
        #: set while new episodes may start (cleared while the store fails); failed store writes so far
        self._intake = asyncio.Event()
        self.store_failures = 0
        #: the most finished episodes seen waiting for the store at once (at most ``results_capacity``)
        self.max_backlog = 0

    # ----- ids and seeds -----------------------------------------------------------------------------
    def task_seed(self, task_index: int) -> int:
        return self.config.seed + task_index

    def trajectory_id(self, task_index: int, sample_index: int, attempt: int = 0) -> str:
        base = f"t{task_index:06d}-s{sample_index:03d}"
        return base if attempt == 0 else f"{base}-a{attempt}"

    def _sampling_seed(self, trajectory_id: str, turn: int) -> int:
        return zlib.crc32(f"{self.config.seed}/{trajectory_id}/{turn}".encode()) & 0x7FFFFFFF

    # ----- the run -----------------------------------------------------------------------------------
    def run(self) -> CollectSummary:
        before = None
        if self.config.census:
            from agentenv.census import Census

            before = Census.take()
        summary = asyncio.run(self.arun())
        if before is not None:  # after the event loop closed: what the run's loop held is released by now
            from agentenv.census import settled_diff

            diff = settled_diff(before, settle_s=10)
            summary.census = str(diff)
            if not diff.clean:
                log.warning("the run left resources behind:\n%s", diff)
        return summary

    async def arun(self) -> CollectSummary:
        cfg = self.config
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        # sync envs run in threads; the default executor (cpu+4 threads) would serialise K episodes
        executor = DaemonThreadPool(max_workers=cfg.concurrency + 4, thread_name_prefix="agentenv-env")
        loop.set_default_executor(executor)
        jobs: asyncio.PriorityQueue[_Job] = asyncio.PriorityQueue()
        if self.tree is not None:
            total, skipped = await self._tree_jobs(jobs)
        else:
            done, next_attempt = await self._finished_keys()
            total = cfg.n_tasks * cfg.group_size
            for task in range(cfg.n_tasks):
                for sample in range(cfg.group_size):
                    if (task, sample) not in done:
                        jobs.put_nowait(_Job(1, next(self._order), task, sample,
                                             attempt=next_attempt.get((task, sample), 0)))
            skipped = total - jobs.qsize()
        summary = CollectSummary(skipped=skipped)
        if not jobs.empty():
            try:
                await self._start_envs()
            except BaseException:
                executor.shutdown(wait=False, cancel_futures=True)
                raise
        if hasattr(self.store, "commit") and hasattr(self.store, "directory"):
            self.ledger = Ledger(self.store.directory).open()
            recovered, interrupted = await asyncio.to_thread(self.ledger.reconcile)
            if recovered or interrupted:
                log.warning("the work ledger of an earlier, interrupted run: %d stored episodes logged now, "
                            "%d in-flight ones closed as interrupted (they run again)", recovered, interrupted)
        # bounded: when the writer cannot keep up (a slow or failing disk), finished episodes wait here and
        # the workers wait for room instead of piling episodes up in memory
        results: asyncio.Queue[Trajectory | None] = asyncio.Queue(maxsize=self.results_capacity)
        self._intake = asyncio.Event()
        self._intake.set()
        with CollectProgress(total, summary.skipped, mode=cfg.progress) as progress:
            writer = asyncio.create_task(self._writer(results, summary, progress))
            workers = [asyncio.create_task(self._worker(jobs, results, slot)) for slot in range(cfg.concurrency)]
            try:
                await self._until_done(jobs, writer)
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                if not writer.done():
                    await results.put(None)
                try:
                    await writer
                finally:
                    self._cancel_unwritten(_drain(results))
                    if self.ledger is not None:
                        self.ledger.close()
                        self.ledger = None
                for env in self._spare_envs:
                    self._discard(env)
                self._spare_envs.clear()
                if self.remote is not None:
                    await self.remote.stop()
                await self._finish_closing()
                # a hung env call keeps its thread; do not let it hold up the end of the run
                loop.set_default_executor(DaemonThreadPool(max_workers=4))
                executor.shutdown(wait=False, cancel_futures=True)
                self._snapshots.clear()
        summary.wall_seconds = time.monotonic() - started
        summary.store_failures = self.store_failures
        return summary

    @property
    def results_capacity(self) -> int:
        """How many finished episodes may wait for the store (the queue between the workers and the writer)."""
        return max(2 * self.config.concurrency, 64)

    async def _until_done(self, jobs: asyncio.PriorityQueue[_Job], writer: asyncio.Task[None]) -> None:
        """Wait for every job (and each round of a tree rollout); a writer that gives up ends the run."""
        while True:
            joined = asyncio.ensure_future(jobs.join())
            await asyncio.wait({joined, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer.done():
                joined.cancel()
                writer.result()  # raises the store's error
                raise RuntimeError("the store writer stopped before the run ended")
            if self.tree is None or not self._next_round(jobs):
                return

    def _cancel_unwritten(self, unwritten: Iterable[Trajectory | None]) -> None:
        """Episodes that finished but never reached the store (the writer gave up): closed as cancelled in the
        ledger, so no intent is left open; a resumed run plays them again."""
        for traj in unwritten:
            if traj is not None and self.ledger is not None:
                self.ledger.cancelled(traj.trajectory_id, traj.task_index, traj.attempt, cause="store_unavailable")

    async def _start_envs(self) -> None:
        """Create the first env (locally, or one on each remote worker) before anything runs: an env that
        cannot be built at all is a configuration error, and a tree rollout must know how it may clone."""
        if self.remote is not None:
            self._clone_mode = await self.remote.start(self)
            first = None
        else:
            first = await self._new_env()
            if first is None:
                raise EnvCreationError(self._env_error)
            self._clone_mode = str(getattr(getattr(first, "unwrapped", first), "clone_mode", "replay"))
            self._spare_envs.append(first)  # the first worker takes it
        if self.branching is not None and self._clone_mode == "none":
            if first is not None:
                self._discard(first)
                self._spare_envs.clear()
            if self.remote is not None:
                await self.remote.stop()
            raise BranchingError(f"{self.env_id} cannot be cloned (clone_mode='none'): its state is not a "
                                 "function of its seed and the actions, so tree rollouts cannot branch on "
                                 "it; use a roots-only algorithm (grpo, gigpo, hgpo, dagger)")

    # ----- tree rollouts: the per-group budget ---------------------------------------------------------
    def _roots(self, task: int) -> int:
        assert self.tree is not None
        n = self.tree.initial(task)
        return self.config.group_size if n is None else n

    def _root_job(self, task: int, sample: int, kind: str) -> _Job:
        tid = f"t{task:06d}-pilot" if kind == "pilot" else self.trajectory_id(task, sample)
        return _Job(1, next(self._order), task, sample, tid=tid, kind=kind)

    def _enqueue(self, jobs: asyncio.PriorityQueue[_Job], job: _Job) -> None:
        self._groups[job.task_index].in_flight += 1
        jobs.put_nowait(job)

    async def _tree_jobs(self, jobs: asyncio.PriorityQueue[_Job]) -> tuple[int, int]:
        """Queue a tree collection's first jobs: its pilots or roots, and on resume whatever the stored
        episodes say is missing (roots, granted children); returns the planned total and what is stored."""
        assert self.tree is not None
        tree, cfg = self.tree, self.config
        stored: list[Trajectory] = []
        if self.store is not None:
            await asyncio.to_thread(self.store.open_run, cfg.run_identity())
            stored = await asyncio.to_thread(lambda: list(self.store.episodes(errors="skip")))
        by_task: dict[int, dict[str, Trajectory]] = {}
        for t in stored:  # the latest attempt of each slot
            slots = by_task.setdefault(t.task_index, {})
            key = slot_id(t.trajectory_id)
            if key not in slots or t.attempt > slots[key].attempt:
                slots[key] = t
        total = 0
        for task in range(cfg.n_tasks):
            have = by_task.get(task, {})
            ledger = self._groups[task] = GroupLedger(tree.budget(task))
            pilot = have.pop(f"t{task:06d}-pilot", None)
            ledger.slots.update(have)
            self._finished += [t for t in have.values() if t.status == "ok"]
            roots: int | None = self._roots(task)
            if tree.pilot:
                roots = int(pilot.extra["roots"]) if pilot is not None and "roots" in pilot.extra else None
                if roots is None:
                    self._enqueue(jobs, self._root_job(task, -1, "pilot"))
            for sample in range(roots or 0):
                tid = self.trajectory_id(task, sample)
                if tid not in ledger.slots:
                    ledger.slots.add(tid)
                    self._enqueue(jobs, self._root_job(task, sample, "init"))
            ledger.next_sample = max([roots or 0, *(t.sample_index + 1 for t in have.values() if t.parent_trajectory_id
                                                    is None)])
            for parent in have.values():  # children granted before the interruption
                for child in parent.extra.get("children", []):
                    if child["id"] not in have:
                        ledger.slots.add(child["id"])
                        request = BranchRequest(child["turn"], 1, child["kind"], child.get("token_offset", 0))
                        self._enqueue(jobs, _Job(0, next(self._order), task, parent.sample_index, parent=parent,
                                                 branch=request, tid=child["id"], kind=request.kind))
            total += ledger.budget if ledger.budget is not None else max(roots or 0, len(ledger.slots))
        return total, len(stored)

    def _after_episode(self, jobs: asyncio.PriorityQueue[_Job], job: _Job, traj: Trajectory) -> None:
        """A tree episode finished: size the roots after a pilot, grant the branches it asks for, and fill
        the group's free slots with global samples once nothing of it runs (unless rounds are post hoc)."""
        assert self.tree is not None
        tree, ledger = self.tree, self._groups[job.task_index]
        if job.kind == "pilot":
            roots = tree.roots_after_pilot(traj) if traj.status == "ok" else self.config.group_size
            traj.extra["roots"] = roots
            for sample in range(roots):
                ledger.slots.add(self.trajectory_id(job.task_index, sample))
                self._enqueue(jobs, self._root_job(job.task_index, sample, "init"))
            ledger.next_sample = max(ledger.next_sample, roots)
        elif traj.status == "ok":
            self._finished.append(traj)
            for request in tree.branches(traj):
                ids = ledger.grant(traj, request)
                tree.granted(traj, request.count, len(ids))
                self._spawn(jobs, traj, request, ids)
        if ledger.in_flight == 0 and not tree.post_hoc:
            self._refill(jobs, job.task_index)
        if ledger.in_flight == 0 and not tree.post_hoc:
            for t in self._finished:
                if t.task_index == job.task_index:
                    self._snapshots.pop(t.trajectory_id, None)

    def _spawn(self, jobs: asyncio.PriorityQueue[_Job], parent: Trajectory, request: BranchRequest,
               ids: list[str]) -> None:
        for tid in ids:
            parent.extra.setdefault("children", []).append(
                {"id": tid, "turn": request.turn, "token_offset": request.token_offset, "kind": request.kind})
            self._enqueue(jobs, _Job(0, next(self._order), parent.task_index, parent.sample_index, parent=parent,
                                     branch=request, tid=tid, kind=request.kind))

    def _refill(self, jobs: asyncio.PriorityQueue[_Job], task: int) -> int:
        """Fresh roots (``global_refill``) for the group's free slots: all at once, or one (which may branch
        into the slots after it) where the strategy refills one at a time."""
        assert self.tree is not None
        ledger = self._groups[task]
        limit = 1 if self.tree.refill_one_at_a_time and not self.tree.post_hoc else 10**9
        added = 0
        while ledger.budget is not None and ledger.free and added < limit:
            sample = ledger.next_sample
            ledger.next_sample += 1
            job = self._root_job(task, sample, "global_refill")
            if job.tid in ledger.slots:
                continue
            ledger.slots.add(job.tid)
            self._enqueue(jobs, job)
            added += 1
        return added

    def _next_round(self, jobs: asyncio.PriorityQueue[_Job]) -> bool:
        """Nothing runs: ask a post-hoc strategy for its next round, else refill; False when done."""
        assert self.tree is not None
        added = 0
        if self.tree.post_hoc:
            finished = sorted(self._finished, key=lambda t: t.trajectory_id)
            for parent, request in self.tree.after_round(finished):
                ids = self._groups[parent.task_index].grant(parent, request, post_hoc=True)
                self.tree.granted(parent, request.count, len(ids))
                if ids:
                    # the parent is stored already; its children are found again from their own ids on resume
                    self._spawn(jobs, parent, request, ids)
                    added += len(ids)
        if not added:
            added = sum(self._refill(jobs, task) for task in self._groups)
        return added > 0

    async def _finished_keys(self) -> tuple[set[tuple[int, int]], dict[tuple[int, int], int]]:
        """The stored slots that are finished, and for a failed one with retries left the attempt to run
        next: a resumed retry is a new attempt (``-a1``), never a second row under the failed one's id."""
        if self.store is None:
            return set(), {}
        await asyncio.to_thread(self.store.open_run, self.config.run_identity())
        rows = await asyncio.to_thread(self.store.keys)
        done: set[tuple[int, int]] = set()
        next_attempt: dict[tuple[int, int], int] = {}
        for row in rows:
            _, task, sample, attempt, status = row
            key = (int(task), int(sample))
            if status != "failed" or attempt >= self.config.env_retries:
                done.add(key)
            else:
                next_attempt[key] = max(next_attempt.get(key, 0), int(attempt) + 1)
        return done, next_attempt

    async def _writer(self, results: asyncio.Queue[Trajectory | None], summary: CollectSummary,
                      progress: CollectProgress) -> None:
        finished = False
        while not finished:
            batch: list[Trajectory] = []
            item = await results.get()
            self.max_backlog = max(self.max_backlog, results.qsize() + 1)
            while True:
                if item is None:
                    finished = True
                else:
                    batch.append(item)
                if finished or results.empty() or len(batch) >= 512:
                    break
                item = results.get_nowait()
            if not batch:
                continue
            if self.store is not None:
                await self._write_with_retries(batch)
            else:
                self.trajectories.extend(batch)
            summary.add(batch)
            progress.add(batch)

    def _commit(self, batch: list[Trajectory]) -> None:
        """Write a batch as one shard, then close its episodes in the work ledger."""
        if self.ledger is None:
            self.store.write(batch)
            return
        hashes = self.store.commit(batch)
        self.ledger.committed(batch, hashes)

    async def _write_with_retries(self, batch: list[Trajectory]) -> None:
        """Commit a batch, retrying an OSError (a full disk, EIO) with capped backoff. While the store fails,
        intake pauses (no new episode starts) and the batch stays in memory; after ``store_stall_timeout``
        seconds of failure the run stops with :class:`StoreUnavailable`."""
        first_failure: float | None = None
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(self._commit, batch)
            except OSError as e:
                now = time.monotonic()
                first_failure = first_failure if first_failure is not None else now
                self.store_failures += 1
                if now - first_failure >= self.config.store_stall_timeout:
                    self._cancel_unwritten(batch)
                    raise StoreUnavailable(
                        e.errno, f"the store at {getattr(self.store, 'directory', self.store)} kept failing for "
                                 f"{now - first_failure:.0f} s ({e}); {len(batch)} finished episodes were not "
                                 "written: resume the collection to run them again") from e
                if self._intake.is_set():
                    log.error("writing %d episodes failed (%s): no new episode starts until the store works "
                              "again (retrying for up to %.0f s)", len(batch), e, self.config.store_stall_timeout)
                    self._intake.clear()
                await asyncio.sleep(min(5.0, 0.25 * 2**attempt))
                attempt += 1
            else:
                if not self._intake.is_set():
                    log.warning("the store works again after %.1f s: collection resumes",
                                time.monotonic() - (first_failure or time.monotonic()))
                    self._intake.set()
                return

    async def _worker(self, jobs: asyncio.PriorityQueue[_Job], results: asyncio.Queue[Trajectory | None],
                      slot: int) -> None:
        while True:
            await self._intake.wait()  # paused while the store fails
            job = await jobs.get()
            tid = self.job_trajectory_id(job)
            if self.ledger is not None:
                self.ledger.intent(tid, job.task_index, job.attempt)
            try:
                traj = await (self.remote.run(slot, job) if self.remote is not None else self.execute(job))
                self._schedule_followups(jobs, job, traj)  # before the write: it records granted children
                await results.put(traj)
            except asyncio.CancelledError:  # the run stops with this episode in flight
                if self.ledger is not None:
                    self.ledger.cancelled(tid, job.task_index, job.attempt)
                raise
            except Exception as e:  # a bug here must not lose the job silently
                log.exception("internal error on job %s", job)
                traj = self._new_trajectory(job)
                traj.status, traj.failure_cause, traj.error = "failed", "internal", repr(e)
                await results.put(traj)
            finally:
                jobs.task_done()

    async def execute(self, job: _Job) -> Trajectory:
        """Play one job's episode on an env of this process: a spare one, or a new one. An env that failed
        (or whose episode was cancelled) is closed instead of reused."""
        env = self._spare_envs.pop() if self._spare_envs else await self._new_env()
        if env is None:
            return self._failed_job(job)
        reusable = False
        try:
            traj, reusable = await self._run_job(env, job)
        finally:
            if reusable:
                self._spare_envs.append(env)
            else:
                self._discard(env)
        return traj

    async def _new_env(self) -> Env | None:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._env_factory), self.config.env_timeout)
        except Exception as e:
            self._env_error = f"could not create env {self.env_id}: {e!r}"
            log.error(self._env_error)
            return None

    def _failed_job(self, job: _Job) -> Trajectory:
        traj = self._new_trajectory(job)
        traj.status, traj.failure_cause = "failed", "env_error"
        traj.error = self._env_error or "could not create env"
        return traj

    def _discard(self, env: Env) -> None:
        """Close an env that may be broken or hung, without waiting on it."""
        async def close() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(env.close_async(), 10)
        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _finish_closing(self, timeout: float = 15) -> None:
        """Wait for the envs being closed; give up on the ones still closing after ``timeout`` seconds, with
        a warning, and cancel their tasks (left pending, they would outlive the run's event loop)."""
        if not self._closing:
            return
        _, pending = await asyncio.wait(set(self._closing), timeout=timeout)
        if pending:
            log.warning("%d env(s) did not close within %.0f s; leaving them to the process's exit",
                        len(pending), timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _schedule_followups(self, jobs: asyncio.PriorityQueue[_Job], job: _Job, traj: Trajectory) -> None:
        if traj.status == "failed" and traj.failure_cause in RETRIED_CAUSES \
                and job.attempt < self.config.env_retries:
            jobs.put_nowait(replace(job, priority=0, order=next(self._order), attempt=job.attempt + 1))
            return  # the retry keeps the slot (and, in a tree, the group's count of running jobs)
        if self.tree is not None:
            self._groups[job.task_index].in_flight -= 1
            self._after_episode(jobs, job, traj)
        elif self.branching is not None and traj.status == "ok":
            for request in self.branching.branches(traj):
                for k in range(request.count):
                    jobs.put_nowait(_Job(0, next(self._order), job.task_index, job.sample_index,
                                         parent=traj, branch=request, child_index=k))

    # ----- one episode -------------------------------------------------------------------------------
    def job_trajectory_id(self, job: _Job) -> str:
        """The id of the episode ``job`` plays: a retry's carries its attempt (``-a2``)."""
        if job.parent is not None and job.branch is not None:
            tid = job.tid or f"{job.parent.trajectory_id}-b{job.branch.turn}.{job.child_index}"
        else:
            tid = job.tid or self.trajectory_id(job.task_index, job.sample_index)
        return f"{tid}-a{job.attempt}" if job.attempt else tid

    def _new_trajectory(self, job: _Job) -> Trajectory:
        cfg = self.config
        tid = self.job_trajectory_id(job)
        if job.parent is not None and job.branch is not None:
            parent = job.parent
            tree_id = parent.tree_id or parent.trajectory_id
            child = Trajectory(
                trajectory_id=tid, group_id=parent.group_id, task_id=parent.task_id,
                task_index=parent.task_index, sample_index=parent.sample_index, seed=parent.seed,
                env_id=self.env_id, env_kwargs=cfg.env_kwargs, policy_id=self.policy.name,
                policy_version=self.policy.version, attempt=job.attempt, tree_id=tree_id,
                parent_trajectory_id=parent.trajectory_id, branch_turn=job.branch.turn,
                branch_token_offset=job.branch.token_offset or None, kind=job.branch.kind,
                started_at=time.time(), extra={"parent": {"tree_id": tree_id}},
            )
            if job.branch.note is not None:
                child.extra["branch"] = dict(job.branch.note)
            return child
        return Trajectory(
            trajectory_id=tid, group_id=f"t{job.task_index:06d}", task_id=f"t{job.task_index:06d}",
            task_index=job.task_index, sample_index=job.sample_index, seed=self.task_seed(job.task_index),
            env_id=self.env_id, env_kwargs=cfg.env_kwargs, policy_id=self.policy.name,
            policy_version=self.policy.version, attempt=job.attempt, kind=job.kind, started_at=time.time(),
            tree_id=tid if self.tree_mode and job.kind != "pilot" else None,
        )

    async def _run_job(self, env: Env, job: _Job) -> tuple[Trajectory, bool]:
        """Run one episode; returns it and whether ``env`` is still fit for reuse."""
        traj = self._new_trajectory(job)
        try:
            async with asyncio.timeout(self.config.episode_timeout):
                await self._play(env, traj, job)
        except EpisodeFailure as e:
            traj.status, traj.failure_cause, traj.error = "failed", e.cause, e.error
        except TimeoutError:
            traj.status, traj.failure_cause = "failed", "episode_timeout"
            traj.error = f"episode exceeded {self.config.episode_timeout} s"
        traj.finished_at = time.time()
        traj.reward = sum(t.reward for t in traj.turns)
        env_ok = traj.status == "ok" or is_policy_cause(traj.failure_cause)
        return traj, env_ok

    async def _env_call(self, what: str, coro: Any) -> Any:
        timeout = self.config.reset_timeout if what == "reset" else self.config.env_timeout
        try:
            return await asyncio.wait_for(coro, timeout)
        except TimeoutError:
            cause = "reset_timeout" if what == "reset" else "env_timeout"
            raise EpisodeFailure(cause, f"env {what} took longer than {timeout} s") from None
        except GraderError as e:
            raise EpisodeFailure("grader_error", f"env {what}: the reward could not be computed: {e}") from None
        except Exception as e:
            raise EpisodeFailure("env_error", f"env {what} raised {e!r}\n{_tb(e)}") from None

    async def _policy_call(self, policy: Policy, request: PolicyRequest) -> PolicyOutput:
        try:
            outputs = await asyncio.wait_for(policy.act([request]), self.config.policy_timeout)
        except TimeoutError:
            raise EpisodeFailure("policy_timeout",
                                 f"policy call took longer than {self.config.policy_timeout} s") from None
        except PolicyUnavailable as e:
            raise EpisodeFailure("policy_unavailable", f"policy {policy.name}: {e}") from None
        except ModelError as e:
            raise EpisodeFailure(f"model_error:{e.kind}", f"policy {policy.name}: {e}") from None
        except Exception as e:
            raise EpisodeFailure("policy_error", f"policy {policy.name} raised {e!r}\n{_tb(e)}") from None
        if len(outputs) != 1 or not isinstance(outputs[0], PolicyOutput):
            raise EpisodeFailure("policy_error", f"policy {policy.name} returned {outputs!r:.200} for one request")
        return outputs[0]

    async def _play(self, env: Env, traj: Trajectory, job: _Job) -> None:
        cfg = self.config
        obs, info = await self._env_call("reset", env.reset_async(seed=traj.seed))
        obs = cap_observation(obs, cfg.max_observation_chars)
        for key in RECORDED_RESET_INFO:
            if key in info:
                traj.extra[key] = info[key]
        conv = Conversation(cfg.prompt)
        conv.start(obs)
        tools = obs.get("tools")
        keep = self._clone_mode == "snapshot" and self.tree_mode
        if job.parent is not None and job.branch is not None:
            obs = await self._clone_prefix(env, traj, conv, job.parent, job.branch.turn, obs)
            if job.branch.token_offset:
                tools = obs.get("tools", tools)
                turn, obs = await self._turn(env, traj, conv, len(traj.turns), obs, tools,
                                             forced=job.parent.turns[job.branch.turn], keep=job.branch.token_offset)
                if await self._record(env, traj, turn, keep):
                    return
        elif keep:
            self._snapshots.setdefault(traj.trajectory_id, {})[0] = await asyncio.to_thread(env.snapshot)
        for index in range(len(traj.turns), cfg.max_turns):
            tools = obs.get("tools", tools)
            turn, obs = await self._turn(env, traj, conv, index, obs, tools)
            if await self._record(env, traj, turn, keep):
                return
        traj.truncated = True
        traj.extra["truncated_by"] = "collector_max_turns"

    async def _record(self, env: Env, traj: Trajectory, turn: Turn, keep_snapshot: bool) -> bool:
        """Append a played turn; True when it ended the episode."""
        traj.turns.append(turn)
        if turn.is_imagined and traj.kind == "init":
            traj.kind = "dream"  # a world model's episode (DynaWeb), told apart from real ones
        if self.on_turn is not None:
            self.on_turn(traj, turn)
        if turn.terminated or turn.truncated:
            traj.terminated, traj.truncated = turn.terminated, turn.truncated
            return True
        if keep_snapshot:
            self._snapshots.setdefault(traj.trajectory_id, {})[turn.index + 1] = await asyncio.to_thread(env.snapshot)
        return False

    async def _turn(self, env: Env, traj: Trajectory, conv: Conversation, index: int, obs: Observation,
                    tools: list[dict[str, Any]] | None, forced: Turn | None = None,
                    keep: int = 0) -> tuple[Turn, Observation]:
        """Play one turn. With ``forced`` (a parent's turn) the action starts with its first ``keep`` tokens
        and the policy samples the rest (APPO's fork inside a turn)."""
        messages = conv.messages()
        continuation = conv.continuation(messages)
        sampling = replace(self.config.sampling, seed=self._sampling_seed(traj.trajectory_id, index))
        request = PolicyRequest(messages=messages, sampling=sampling, tools=tools,
                                admissible=obs.get("admissible"), continuation=continuation,
                                trajectory_id=traj.trajectory_id, turn=index,
                                prefix_hint=traj.parent_trajectory_id or "")
        if forced is not None:
            request = self._forced_request(request, traj, forced, keep)
        teacher = self.teacher
        if self.policy.wants_expert or (teacher is not None and teacher.teacher.wants_expert):
            request.expert_action = await self._env_call("expert_action", env.expert_action_async())
        if getattr(self.policy, "wants_candidates", False):
            request.candidates = await self._env_call("action_candidates", asyncio.to_thread(env.action_candidates))
        t0 = time.monotonic()
        teacher_out: PolicyOutput | None = None
        teacher_acts = teacher is not None and teacher.teacher_acts(traj.trajectory_id, index)
        if teacher is not None and (teacher_acts or teacher.label_all_states):
            teacher_out = await self._policy_call(teacher.teacher, request)
        out = teacher_out if teacher_acts and teacher_out is not None else await self._policy_call(self.policy, request)
        if teacher_acts and not out.completion_ids and hasattr(self.policy, "tokenize_action"):
            # a text-only teacher acted: keep the episode's token stream in the student's tokens
            out = self.policy.tokenize_action(request, out.text)
        if forced is not None:
            out = self._joined_output(forced, keep, out)
            request.continuation = continuation
        policy_seconds = time.monotonic() - t0
        t1 = time.monotonic()
        next_obs, reward, terminated, truncated, info = await self._env_call("step", env.step_async(out.text))
        next_obs = cap_observation(next_obs, self.config.max_observation_chars)
        env_seconds = time.monotonic() - t1
        turn = self._make_turn(index, obs, out, request, next_obs, reward, terminated, truncated, info)
        turn.policy_seconds, turn.env_seconds = policy_seconds, env_seconds
        if teacher is not None:
            turn.info["teacher_beta"] = teacher.beta_at(index)  # the mixing probability this turn's coin used
        if teacher_out is not None:
            turn.teacher_action = teacher_out.text
            turn.teacher_completion_ids = list(teacher_out.completion_ids or [])
        if teacher_acts:
            turn.actor = "teacher"
            turn.completion_mask = [0] * len(turn.completion_ids)
        conv.record(messages, out, out.text, next_obs)
        return turn, next_obs

    def _forced_request(self, request: PolicyRequest, traj: Trajectory, forced: Turn, keep: int) -> PolicyRequest:
        """The request that continues ``forced``'s action after its first ``keep`` tokens: the exact prompt
        the parent saw at that turn, then those tokens, as token ids."""
        if not hasattr(self.policy, "decode"):
            raise EpisodeFailure("internal", f"policy {self.policy.name} cannot decode tokens, so it cannot "
                                 "continue a turn from a token prefix")
        if keep >= len(forced.completion_ids) or not forced.prompt_ids:
            raise EpisodeFailure("internal", f"cannot fork inside turn {forced.index} after {keep} tokens: the turn "
                                 f"has {len(forced.completion_ids)} sampled tokens")
        context: list[int] = []
        for _, prompt in traj.full_prompts():  # the copied turns: the parent's own
            context = prompt
        if traj.turns:
            context = context + traj.turns[-1].completion_ids
        prompt = context[: forced.prompt_offset] + forced.prompt_ids
        sampling = replace(request.sampling, max_tokens=max(1, request.sampling.max_tokens - keep))
        return replace(request, prompt_ids=prompt + forced.completion_ids[:keep], sampling=sampling,
                       continuation=None)

    def _joined_output(self, forced: Turn, keep: int, out: PolicyOutput) -> PolicyOutput:
        """The parent's first ``keep`` tokens (with their recorded behaviour log-probs, by reference) joined
        to what the policy sampled after them, as one action."""
        ids = forced.completion_ids[:keep] + list(out.completion_ids or [])

        def joined(mine: list[Any] | None, theirs: list[Any]) -> list[Any] | None:
            if mine is None or len(theirs) < keep:
                return None
            return theirs[:keep] + list(mine)

        prompt = list(out.prompt_ids or [])
        head = self.policy.decode(forced.completion_ids[:keep])  # type: ignore[attr-defined]
        return replace(out, text=head + out.text,
                       prompt_ids=prompt[: len(prompt) - keep] if prompt else None, completion_ids=ids,
                       logprobs=joined(out.logprobs, forced.logprobs),
                       top_ids=joined(out.top_ids, forced.top_ids),
                       top_logprobs=joined(out.top_logprobs, forced.top_logprobs),
                       entropies=joined(out.entropies, forced.entropies))

    def _make_turn(self, index: int, obs: Observation, out: PolicyOutput, request: PolicyRequest,
                   next_obs: Observation, reward: float, terminated: bool, truncated: bool,
                   info: dict[str, Any]) -> Turn:
        prompt_ids, offset = new_prompt_tokens(list(out.prompt_ids or []), request.continuation)
        completion = list(out.completion_ids or [])
        info = dict(info)
        parsed = info.pop("parsed_action", None) or {}
        return Turn(
            index=index, observation=[dict(m) for m in obs["messages"]], action=out.text,
            prompt_ids=prompt_ids, prompt_offset=offset, completion_ids=completion,
            completion_mask=[1] * len(completion), logprobs=list(out.logprobs or []),
            top_ids=[list(x) for x in out.top_ids or []], top_logprobs=[list(x) for x in out.top_logprobs or []],
            entropies=list(out.entropies or []), entropy_kind=out.entropy_kind, finish_reason=out.finish_reason,
            token_source=out.token_source or ("sampled" if completion else ""),
            tool_calls=list(parsed.get("tool_calls") or []), action_valid=bool(info.get("action_valid", True)),
            feedback=[dict(m) for m in next_obs["messages"]], reward=float(reward), terminated=bool(terminated),
            truncated=bool(truncated), anchor_key=str(info.pop("anchor_key", None) or anchor_key(obs)),
            admissible=obs.get("admissible"), info=info, policy_version=out.policy_version,
            is_imagined=bool(info.pop("is_imagined", False)),
        )

    async def _clone_prefix(self, env: Env, traj: Trajectory, conv: Conversation, parent: Trajectory,
                            turn: int, obs: Observation) -> Observation:
        """Bring a fresh env to the parent's state before ``turn`` and copy those turns (by reference: the
        child shares the parent's token and log-prob lists). The env is restored from the parent's
        snapshot where it keeps them, else it re-plays the parent's actions, and each answer must equal the
        recorded one."""
        if not 0 <= turn < len(parent.turns):
            raise EpisodeFailure("internal", f"cannot branch {parent.trajectory_id} at turn {turn}")
        snapshot = self._snapshots.get(parent.trajectory_id, {}).get(turn)
        if snapshot is not None:
            await self._env_call("restore", asyncio.to_thread(env.restore, snapshot))
        prompts = [prompt for _, prompt in itertools.islice(parent.full_prompts(), turn)]
        for index in range(turn):
            recorded = parent.turns[index]
            messages = conv.messages()
            if snapshot is None:
                next_obs, *_ = await self._env_call("step", env.step_async(recorded.action))
                next_obs = cap_observation(next_obs, self.config.max_observation_chars)
                if [dict(m) for m in next_obs["messages"]] != recorded.feedback:
                    raise EpisodeFailure("env_error", f"replaying {parent.trajectory_id} diverged at turn {index}: "
                                         "the env is not deterministic under its seed")
            else:
                following = parent.turns[index + 1]
                next_obs = {"messages": recorded.feedback}
                if following.admissible is not None:
                    next_obs["admissible"] = following.admissible
            traj.turns.append(copy.copy(recorded))
            conv.record(messages, PolicyOutput(text=recorded.action, prompt_ids=prompts[index] or None,
                                               completion_ids=recorded.completion_ids or None),
                        recorded.action, next_obs)
            obs = next_obs
        return obs


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def anchor_key(obs: Observation) -> str:
    """The default canonical form of the current observation: its message texts, without history."""
    return "\n".join(content_text(m["content"]) for m in obs.get("messages", []))


def _tb(e: BaseException) -> str:
    return "".join(traceback.format_exception(e)[-3:])[-2000:]


def collect(
    env_id: str,
    policy: Policy,
    *,
    n_tasks: int = 1,
    group_size: int = 1,
    concurrency: int = 8,
    out: str | Path | None = None,
    **config: Any,
) -> tuple[CollectSummary, list[Trajectory]]:
    """Collect and return the summary and the trajectories (read back from ``out`` when given)."""
    cfg = CollectConfig(env_id=env_id, n_tasks=n_tasks, group_size=group_size, concurrency=concurrency, **config)
    store = None
    if out is not None:
        from agentenv.store import TrajectoryStore

        store = TrajectoryStore(Path(out))
    collector = Collector(cfg, policy, store)
    summary = collector.run()
    trajectories = list(store.episodes()) if store is not None else collector.trajectories
    return summary, trajectories

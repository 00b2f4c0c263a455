"""Reliability rows F04, F05, F06 and L07: a policy server that fails, stalls, answers garbage or saturates.

A mock OpenAI-compatible server (the repo's own HTTP layer, ``create_openai_app``, over a scripted model that
plays the first admissible action of ``agentenv-testing/Countdown-v0``) sits behind a :class:`FaultProxy`;
``OpenAIPolicy`` drives real collections into a ``TrajectoryStore``. Each test checks the row's safe outcome,
the work ledger (L1-L3) and the resource census around the collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentenv.budget import slot_id
from agentenv.census import Census
from agentenv.collector import CollectConfig, Collector
from agentenv.ledger import check_ledger
from agentenv.policies.openai_api import create_openai_app
from agentenv.policies.openai_client import OpenAIPolicy
from agentenv.policy import PolicyOutput, PolicyRequest, SamplingParams
from agentenv.serving import ServerThread
from agentenv.store import TrajectoryStore
from agentenv.summary import CollectSummary
from agentenv.testing.http_faults import Fault, FaultProxy, drop, reset, rewrite, stall, status, trickle
from agentenv.testing.mock_policy import END, ByteTokenizer, ScriptedModel, countdown_answer
from agentenv.trajectory import Trajectory

pytestmark = pytest.mark.integration

COUNTDOWN = "agentenv-testing/Countdown-v0"
MODEL = "countdown"


def countdown_model(slots: int = 64, latency: float = 0.0) -> ScriptedModel:
    """The served model: ``Action: <n-1>`` for the last number the env showed, with ``slots`` generations at
    once (an engine's ``max_num_seqs``: more requests queue on the server), each taking ``latency``."""
    return ScriptedModel(countdown_answer, slots=slots, latency=latency, name=MODEL)


class TimedPolicy:
    """Wraps a policy and records how long each call blocked the episode, and how it ended."""

    def __init__(self, inner: OpenAIPolicy):
        self.inner = inner
        self.name, self.version, self.wants_expert = inner.name, 0, False
        self.calls: list[tuple[float, str]] = []  # (seconds, "ok" or the error's class name)

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        started = time.monotonic()
        outcome = "ok"
        try:
            return await self.inner.act(requests)
        except Exception as e:
            outcome = type(e).__name__
            raise
        finally:
            self.calls.append((time.monotonic() - started, outcome))

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, ScriptedModel]]:
    model = countdown_model()
    with ServerThread(create_openai_app(model)) as thread:
        yield thread, model


@pytest.fixture
def proxy(server: tuple[ServerThread, ScriptedModel]) -> Iterator[FaultProxy]:
    with FaultProxy(server[0].port) as p:
        yield p


def client(url: str, token_exact: bool = False, **kwargs: Any) -> OpenAIPolicy:
    options: dict[str, Any] = {"backoff_s": 0.01, "max_retries": 3, "timeout_s": 10.0, **kwargs}
    return OpenAIPolicy(url, model=MODEL, tokenizer=ByteTokenizer() if token_exact else None, **options)


@contextlib.contextmanager
def guard(tmp_path: Path, settle_s: float = 5.0) -> Iterator[Census]:
    """The census around a collection: this process's descendants and open fds must be back to baseline
    (within ``settle_s``: closing sockets takes a moment). The policy path starts no sandbox, mounts nothing
    and makes no temp dir, and what the census sees of those is machine-wide (sandbox uids, the mount
    namespace, the shared temp dir): on a shared machine it would only see the neighbours' work (their
    sandboxes' zombies, their containers' overlay mounts), so those parts are left out here."""
    private = tmp_path / "census-tmp"
    private.mkdir(exist_ok=True)
    before = Census.take(containers=False, sandbox_uids=(), temp_dir=str(private))
    yield before
    deadline = time.monotonic() + settle_s
    while True:
        diff = before.diff(Census.take_with(before.options))
        if not (diff.processes or diff.orphans or diff.fds or diff.temp_paths):
            return
        if time.monotonic() > deadline:
            raise AssertionError(str(diff))
        time.sleep(0.05)


def run(policy: Any, out: Path, n_tasks: int, concurrency: int = 4,
        **config: Any) -> tuple[CollectSummary, list[Trajectory]]:
    """Collect into a store at ``out`` with the census checked around it (the policy's connections closed
    at the end, as its owner must); returns the summary and the stored episodes."""
    cfg = CollectConfig(env_id=COUNTDOWN, n_tasks=n_tasks, concurrency=concurrency, progress="off",
                        env_kwargs={"start": 2}, **config)

    async def go() -> CollectSummary:
        try:
            return await Collector(cfg, policy, TrajectoryStore(out)).arun()
        finally:
            await policy.aclose()

    with guard(out.parent):
        summary = asyncio.run(go())
    return summary, list(TrajectoryStore(out).episodes())


def ledger_ok(out: Path, n_tasks: int) -> dict[str, str]:
    """check_ledger against the expected slots; returns each slot's final status."""
    report = check_ledger(out, [slot_id(f"t{t:06d}-s000") for t in range(n_tasks)])
    assert report.ok, str(report)
    return report.final


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# ----- F04: 500/502/503/429/RST/loss: bounded retries, then failed_infra ------------------------------------
F04_FAULTS = [status(500), status(502), status(503), status(429, retry_after=0.05), reset(), drop()]


@pytest.mark.parametrize("fault", F04_FAULTS, ids=str)
def test_f04_5xx_429_and_resets_are_retried_then_failed_infra(fault: Fault, proxy: FaultProxy, tmp_path: Path,
                                                             reliability: Any) -> None:
    reliability.backend = "http"
    budget = 4  # max_retries=3
    # transient: the first three requests fail; every call gets through within its budget
    proxy.configure(plan=[fault] * 3)
    policy = client(proxy.url)
    summary, episodes = run(policy, tmp_path / "transient", n_tasks=4)
    assert [e.status for e in episodes] == ["ok"] * 4 and all(e.reward == 1.0 for e in episodes)
    assert proxy.counts()[str(fault)] == 3 and policy.stats["retries"] == 3 and policy.stats["failed"] == 0
    assert max(proxy.attempts().values()) <= budget
    assert set(ledger_ok(tmp_path / "transient", 4).values()) == {"completed"}
    transient_retries = policy.stats["retries"]

    # persistent: every attempt fails; each call makes exactly `budget` attempts, backing off between them,
    # and every episode (and its retry on a fresh env) ends failed_infra, never completed with reward 0
    proxy.log.clear()
    proxy.configure(rates={fault: 1.0})
    policy = client(proxy.url)
    summary, episodes = run(policy, tmp_path / "down", n_tasks=2, env_retries=1)
    assert len(episodes) == 4 and all(e.status == "failed" for e in episodes)
    assert {e.failure_cause for e in episodes} == {"policy_unavailable"}
    assert summary.failures == {"policy_unavailable": 4} and summary.successes == 0
    assert sorted(e.trajectory_id for e in episodes) == ["t000000-s000", "t000000-s000-a1", "t000001-s000",
                                                         "t000001-s000-a1"]
    attempts = proxy.attempts()
    assert len(attempts) == 4 and set(attempts.values()) == {budget}
    assert policy.stats["failed"] == 4 and policy.stats["retries"] == 4 * (budget - 1)
    gaps = _retry_gaps(proxy)
    floor = [0.05] * 3 if fault.retry_after else [0.5 * 0.01 * 2**k for k in range(3)]  # jitter in [0.5, 1] x
    assert all(g[k] >= floor[k] * 0.95 for g in gaps for k in range(3)), gaps
    assert set(ledger_ok(tmp_path / "down", 2).values()) == {"failed_infra"}
    reliability.measure(retries_transient=transient_retries, attempts_per_call=budget, calls_failed=4,
                        min_gap_s=round(min(min(g) for g in gaps), 4), leaks=0, ledger="ok")


def _retry_gaps(proxy: FaultProxy) -> list[list[float]]:
    """For each call (episode, turn), the seconds between its consecutive attempts."""
    times: dict[tuple[str, str], list[float]] = {}
    for record in proxy.log:
        times.setdefault((record.trajectory, record.turn), []).append(record.t)
    return [[b - a for a, b in itertools.pairwise(ts)] for ts in times.values()]


def test_f04_a_run_that_never_closes_the_policy_leaves_no_connections(server: tuple[ServerThread, ScriptedModel],
                                                                     tmp_path: Path, reliability: Any) -> None:
    """``Collector.run`` owns its event loop and never calls ``policy.aclose()``: the client's pooled keep-alive
    connections must close with that loop all the same (before the fix the census found 8 sockets left: 4
    client ends and the 4 server ends they held open), and the policy must work on the next run's loop."""
    reliability.backend = "http"
    policy = client(server[0].url)  # no proxy: connections are kept alive in the pool
    for name in ("first", "second"):
        cfg = CollectConfig(env_id=COUNTDOWN, n_tasks=4, concurrency=4, progress="off", env_kwargs={"start": 2})
        with guard(tmp_path):
            summary = Collector(cfg, policy, TrajectoryStore(tmp_path / name)).run()
        assert summary.successes == 4
        assert set(ledger_ok(tmp_path / name, 4).values()) == {"completed"}
    reliability.measure(runs=2, leaks=0, ledger="ok")


def test_f04_ten_percent_loss_and_scattered_errors_complete_every_episode(proxy: FaultProxy, tmp_path: Path,
                                                                         reliability: Any) -> None:
    reliability.backend = "http"
    rates: dict[Fault, float] = {drop(): 0.10, status(500): 0.01, status(502): 0.01, status(503): 0.01,
                                 status(429, retry_after=0.02): 0.01, reset(): 0.01}
    proxy.configure(rates=rates, seed=4)
    policy = client(proxy.url, max_retries=6)
    n = 8
    _, episodes = run(policy, tmp_path / "lossy", n_tasks=n)
    assert len(episodes) == n and all(e.status == "ok" and e.reward == 1.0 for e in episodes)
    faults = sum(v for k, v in proxy.counts().items() if k != "pass")
    assert faults > 0 and policy.stats["retries"] == faults  # each injected fault cost exactly one retry
    assert max(proxy.attempts().values()) <= 7
    assert set(ledger_ok(tmp_path / "lossy", n).values()) == {"completed"}
    reliability.measure(requests=len(proxy.log), faults=faults, retries=policy.stats["retries"],
                        max_attempts=max(proxy.attempts().values()), leaks=0, ledger="ok")


# ----- F05: stall and slowloris: the client's total deadline fires --------------------------------------------
@pytest.mark.parametrize("fault", [stall(), trickle(0.05)], ids=str)
def test_f05_stalled_and_trickling_servers_hit_the_total_deadline(fault: Fault, proxy: FaultProxy, tmp_path: Path,
                                                                  reliability: Any) -> None:
    reliability.backend = "http"
    deadline, grace = 0.6, 1.5
    proxy.configure(rates={fault: 1.0})
    policy = TimedPolicy(client(proxy.url, timeout_s=deadline))
    started = time.monotonic()
    summary, episodes = run(policy, tmp_path / "stuck", n_tasks=3, policy_timeout=10 * deadline)
    wall = time.monotonic() - started
    longest = max(seconds for seconds, _ in policy.calls)
    assert {e.failure_cause for e in episodes} == {"policy_unavailable"} and len(episodes) == 3
    assert summary.failures == {"policy_unavailable": 3}  # the collector's own watchdog (policy_timeout) never fired
    assert all(outcome == "PolicyUnavailable" for _, outcome in policy.calls)
    assert deadline * 0.95 <= longest <= deadline + grace, policy.calls
    assert policy.inner.stats["failed:timeout"] == 3
    assert set(ledger_ok(tmp_path / "stuck", 3).values()) == {"failed_infra"}
    reliability.measure(deadline_s=deadline, max_blocked_s=round(longest, 3), collection_s=round(wall, 2),
                        watchdog_fired=0, leaks=0, ledger="ok")


def test_f05_a_stalled_call_fails_its_episode_and_the_retry_completes(proxy: FaultProxy, tmp_path: Path,
                                                                      reliability: Any) -> None:
    reliability.backend = "http"
    proxy.configure(plan=[stall()])
    policy = client(proxy.url, timeout_s=0.5)
    _, episodes = run(policy, tmp_path / "once", n_tasks=2, concurrency=1, env_retries=1)
    by_id = {e.trajectory_id: e for e in episodes}
    assert by_id["t000000-s000"].failure_cause == "policy_unavailable"
    assert by_id["t000000-s000-a1"].status == "ok" and by_id["t000001-s000"].status == "ok"
    assert ledger_ok(tmp_path / "once", 2) == {"t000000-s000": "completed", "t000001-s000": "completed"}
    reliability.measure(stalls=1, episode_retries=1, leaks=0, ledger="ok")


# ----- F06: malformed answers end as typed outcomes, never a crash -------------------------------------------
#: (rewrite, token-exact?, how the answer must end: a model_error kind, or None when the episode goes on)
F06_CASES = [
    *((kind, exact, outcome) for exact in (True, False) for kind, outcome in (
        ("invalid_json", "malformed_body"), ("no_choices", "no_choices"), ("empty_content", None),
        ("length", None), ("no_logprobs", None))),
    ("wrong_ids", True, "ids_text_mismatch"),
]


@pytest.mark.parametrize(("kind", "token_exact", "outcome"), F06_CASES,
                         ids=[f"{k}-{'exact' if e else 'chat'}" for k, e, _ in F06_CASES])
def test_f06_malformed_answers_end_as_typed_outcomes(kind: str, token_exact: bool, outcome: str | None,
                                                     proxy: FaultProxy, tmp_path: Path, reliability: Any) -> None:
    reliability.backend = "http"
    n = 2
    # an empty answer hits only the first call (the env then refuses the empty action and asks again)
    if kind == "empty_content":
        proxy.configure(plan=[rewrite(kind)])
    else:
        proxy.configure(rates={rewrite(kind): 1.0})
    policy = client(proxy.url, token_exact=token_exact)
    with contextlib.ExitStack() as stack:
        if kind == "no_logprobs":  # flagged once, and counted
            stack.enter_context(pytest.warns(RuntimeWarning, match="without their log-probs"))
        summary, episodes = run(policy, tmp_path / kind, n_tasks=n, env_retries=1, concurrency=1)
    final = ledger_ok(tmp_path / kind, n)
    if outcome is not None:
        cause = f"model_error:{outcome}"
        assert len(episodes) == n and {e.failure_cause for e in episodes} == {cause}  # model errors: not retried
        assert summary.failures == {cause: n} and set(final.values()) == {"failed_model"}
        attempts = set(proxy.attempts().values())
        assert attempts == ({4} if kind == "invalid_json" else {1})  # only a garbled body is worth a retry
        assert policy.stats[f"failed:{outcome}"] == n
    else:
        assert all(e.status == "ok" and e.reward == 1.0 for e in episodes) and set(final.values()) == {"completed"}
        turns = [t for e in episodes for t in e.turns]
        if kind == "length":
            assert {t.finish_reason for t in turns} == {"length"}
        elif kind == "no_logprobs":
            assert all(t.completion_ids and not t.logprobs for t in turns)
            assert policy.stats["missing_logprobs"] == len(turns)
        else:
            empty = [t for t in turns if t.action == ""]
            assert len(empty) == 1 and not empty[0].action_valid and empty[0].completion_ids == [END]
    counted = {k: v for k, v in policy.stats.items() if k.startswith(("error:", "failed:", "missing_"))}
    reliability.measure(kind=kind, mode="token_exact" if token_exact else "chat", failures=dict(summary.failures),
                        errors=counted, leaks=0, ledger="ok")


def test_f06_ids_that_run_past_the_text_at_a_stop_string_are_no_mismatch(proxy: FaultProxy, tmp_path: Path,
                                                                          reliability: Any) -> None:
    """The ids-text check compares the decoded ids' prefix: a stop string ends the text before its own tokens,
    which the ids keep, and that is a valid answer."""
    reliability.backend = "http"
    policy = client(proxy.url, token_exact=True)
    summary, episodes = run(policy, tmp_path / "stop", n_tasks=2, sampling=SamplingParams(stop=("\nObservation",)))
    assert not summary.failures and all(e.status == "ok" and e.reward == 1.0 for e in episodes)
    turn = episodes[0].turns[0]
    assert ByteTokenizer().decode(turn.completion_ids) == turn.action + "\nObservation"
    reliability.measure(mismatches=policy.stats["error:ids_text_mismatch"], leaks=0, ledger="ok")


# ----- L07: saturation: 10x the engine's slots queue, and nothing is misclassified as infra ----------------
def test_l07_ten_times_max_num_seqs_queue_without_infra_failures(tmp_path: Path, reliability: Any,
                                                                 long_run: bool) -> None:
    reliability.backend = "http"
    slots, latency = (8, 0.05) if long_run else (4, 0.03)
    n = 10 * slots
    model = countdown_model(slots=slots, latency=latency)
    with ServerThread(create_openai_app(model)) as server:
        policy = TimedPolicy(client(server.url, concurrency=n, timeout_s=30.0))
        summary, episodes = run(policy, tmp_path / "busy", n_tasks=n, concurrency=n)
    seconds = [s for s, _ in policy.calls]
    assert len(episodes) == n and all(e.status == "ok" for e in episodes) and not summary.failures
    assert model.max_in_flight == slots  # the engine never ran more than its slots ...
    assert max(seconds) > 3 * latency  # ... so requests queued
    assert max(seconds) < 30.0 and policy.inner.stats["retries"] == 0
    assert set(ledger_ok(tmp_path / "busy", n).values()) == {"completed"}
    reliability.measure(slots=slots, concurrent=n, requests=len(seconds), failed_infra=0,
                        errors={k: v for k, v in policy.inner.stats.items() if ":" in k},
                        p50_s=round(statistics.median(seconds), 4), p99_s=round(p(seconds, 0.99), 4),
                        max_s=round(max(seconds), 4), leaks=0, ledger="ok")


def test_l07_a_call_is_failed_infra_only_once_the_total_deadline_passed(tmp_path: Path, reliability: Any) -> None:
    reliability.backend = "http"
    slots, latency, deadline = 2, 0.1, 0.5
    n = 10 * slots  # a queue of ten: the last ones wait ~1 s, past the deadline
    model = countdown_model(slots=slots, latency=latency)
    with ServerThread(create_openai_app(model)) as server:
        policy = TimedPolicy(client(server.url, concurrency=n, timeout_s=deadline))
        summary, _ = run(policy, tmp_path / "tight", n_tasks=n, concurrency=n)
    failed = [s for s, outcome in policy.calls if outcome != "ok"]
    passed = [s for s, outcome in policy.calls if outcome == "ok"]
    assert failed and passed, policy.calls  # the queue was long enough for both
    assert min(failed) >= deadline * 0.95  # no call failed before its deadline
    assert {o for _, o in policy.calls if o != "ok"} == {"PolicyUnavailable"}
    assert set(summary.failures) == {"policy_unavailable"}
    assert set(ledger_ok(tmp_path / "tight", n).values()) <= {"completed", "failed_infra"}
    reliability.measure(deadline_s=deadline, calls=len(policy.calls), timed_out=len(failed),
                        min_failed_s=round(min(failed), 4), max_ok_s=round(max(passed), 4), leaks=0, ledger="ok")

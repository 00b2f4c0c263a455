"""Check that an environment keeps the agentenv contract; run it on your own envs and in your CI.

    from agentenv import check_env

    check_env("agentenv/Maze-v0").raise_if_failed()      # a registered id
    print(check_env(MyEnv(), steps=50))                    # or an instance: a readable report

Gymnasium's own checker covers the gymnasium half of the contract (spaces, return types, seeding of
``reset``). The agent half is ours, and each promise is a named check so that a report says which one
broke:

* ``step_before_reset``: ``step`` on a fresh env raises :class:`agentenv.env.ResetNeeded`.
* ``gymnasium``: ``gymnasium.utils.env_checker.check_env`` (its warnings are kept in the report).
* ``reset_seeding``: the same seed and the same actions replay the same episode (observations, rewards
  and flags); different seeds should give different episodes (a warning only: some tasks have one instance).
* ``observation_format``: every observation passes :func:`agentenv.messages.observation_problems`, rewards
  are numbers, the flags are bools and ``info`` is a dict.
* ``bad_actions_never_raise``: text a model may produce (empty, huge, binary, malformed JSON, deep nesting)
  and a non-text action are answered with a well-formed observation and ``info["action_valid"] = False``,
  and ``max_invalid_actions`` of them end the episode as truncated, not terminated.
* ``async_twins``: ``reset_async`` / ``step_async`` give what ``reset`` / ``step`` give.
* ``close_idempotent``: ``close`` may be called twice.

The episodes are played with the env's expert (``expert_action()``) when it has one, else with seeded
picks among the admissible actions, else with samples of the action space, for at most ``steps`` steps.

With an id, every check gets its own freshly made env. With an instance, the checks share it: pass a fresh
one (``step_before_reset`` runs first and needs an env that was never reset), and it is closed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import re
import traceback
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from gymnasium.utils.env_checker import data_equivalence

from agentenv.env import ResetNeeded
from agentenv.messages import observation_problems
from agentenv.registry import make, resolve_id

#: The checks in the order they run; names for ``skip`` and for :meth:`CheckReport.__getitem__`.
CHECKS: tuple[str, ...] = (
    "step_before_reset",
    "gymnasium",
    "reset_seeding",
    "observation_format",
    "bad_actions_never_raise",
    "async_twins",
    "close_idempotent",
)

#: Actions a model can produce that no env should accept, each with the label a report shows.
BAD_ACTIONS: tuple[tuple[str, Any], ...] = (
    ("the empty string", ""),
    ("whitespace", " \n\t \r\n  "),
    ("a 1 MB string", "Action: " + "a" * 1_000_000),
    ("binary garbage and control characters", "\x00\x1b[31m\x7f\x85\u2028" + bytes(range(256)).decode("latin-1")),
    ("lone surrogates", "\ud800 go \udfff north \udc00"),
    ("truncated JSON", '{"name": "x", "arguments": '),
    ("10000 nested '['", "[" * 10_000),
    ("a <tool_call> tag without JSON", "<tool_call>not json</tool_call>"),
    ("an int instead of text", 12345),
)

_SEED_VARIANTS = 3  # how many other seeds reset_seeding tries before warning that seeds change nothing
_SHOWN = 120  # characters of a value shown in a message


class EnvContractError(AssertionError):
    """An environment failed :func:`check_env`; the message lists every failed check."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one named check. ``warnings`` are worth reading but do not fail the check."""

    name: str
    passed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


@dataclass
class CheckReport:
    """Every check's result for one env; ``print(report)`` shows them, ``raise_if_failed()`` asserts."""

    env: str
    results: list[CheckResult] = field(default_factory=list)
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings do not count)."""
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    @property
    def warnings(self) -> list[str]:
        """Every warning, prefixed with the name of the check that raised it."""
        return [f"{r.name}: {w}" for r in self.results for w in r.warnings]

    def __getitem__(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check named {name!r} in this report; it has {[r.name for r in self.results]}")

    def __str__(self) -> str:
        counts = f"{len(self.results) - len(self.failed)} passed, {len(self.failed)} failed"
        if self.skipped:
            counts += f", {len(self.skipped)} skipped ({', '.join(self.skipped)})"
        lines = [f"check_env({self.env}): {counts}"]
        for r in self.results:
            lines.append(f"  {'PASS' if r.passed else 'FAIL'} {r.name}" + (f": {r.message}" if r.message else ""))
            lines += [f"       warning: {w}" for w in r.warnings]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`EnvContractError` naming every failed check, so a test shows them all at once."""
        if not self.ok:
            failures = "\n".join(f"  {r.name}: {r.message}" for r in self.failed)
            raise EnvContractError(f"{self.env} breaks the agentenv env contract:\n{failures}\n\n{self}")


def check_env(
    env_or_id: str | gym.Env[Any, Any],
    *,
    seed: int = 0,
    steps: int = 20,
    skip: Iterable[str] = (),
) -> CheckReport:
    """Run every check in :data:`CHECKS` but those named in ``skip`` on an env instance or a registered id.

    A check that raises is a failed check, never an exception out of ``check_env``: the report always
    comes back complete. ``seed`` seeds the episodes; ``steps`` bounds each episode's length.
    """
    skipped = tuple(skip)
    unknown = sorted(set(skipped) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check name(s) {unknown} in skip; the checks are {', '.join(CHECKS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    source = _EnvSource(env_or_id)
    run = {
        "step_before_reset": _check_step_before_reset,
        "gymnasium": _check_gymnasium,
        "reset_seeding": lambda env: _check_reset_seeding(env, seed, steps),
        "observation_format": lambda env: _check_observation_format(env, seed, steps),
        "bad_actions_never_raise": lambda env: _check_bad_actions(env, seed),
        "async_twins": lambda env: _check_async_twins(env, seed, steps),
        "close_idempotent": lambda env: _check_close_idempotent(env, seed),
    }
    report = CheckReport(env=source.label, skipped=skipped)
    for name in CHECKS:
        if name not in skipped:
            report.results.append(source.run(name, run[name]))
    return report


# ----- plumbing ---------------------------------------------------------------------------------------


class _Failed(Exception):
    """Raised by a check with the message its result shows."""


_Check = Callable[[gym.Env[Any, Any]], "list[str] | None"]


class _EnvSource:
    """Gives each check its env: a fresh one per check for an id, the one instance otherwise."""

    def __init__(self, env_or_id: str | gym.Env[Any, Any]):
        self.id: str | None = None
        self.instance: gym.Env[Any, Any] | None = None
        if isinstance(env_or_id, str):
            self.id = resolve_id(env_or_id)
        else:
            self.instance = env_or_id
        self.label = self.id or type(env_or_id).__name__

    def _env(self) -> gym.Env[Any, Any]:
        if self.instance is not None:
            return self.instance
        assert self.id is not None
        return make(self.id)

    def run(self, name: str, check: _Check) -> CheckResult:
        try:
            env = self._env()
        except Exception as e:
            return CheckResult(name, False, f"could not make the env: {_describe(e)}")
        # gymnasium's checker sees the object as given; agentenv's checks test the env's own contract, which
        # wrappers (gymnasium's OrderEnforcing raises its own ResetNeeded, for one) would hide.
        target = env if name == "gymnasium" else env.unwrapped
        try:
            found = check(target)
            return CheckResult(name, True, warnings=tuple(found or ()))
        except _Failed as e:
            return CheckResult(name, False, str(e))
        except Exception as e:
            return CheckResult(name, False, f"raised {_describe(e)}")
        finally:
            if self.id is not None and name != "close_idempotent":
                # close_idempotent reports close errors; here they would hide this check's result
                with contextlib.suppress(Exception):
                    env.close()


def _describe(e: BaseException) -> str:
    """``Type: message (at file:line in function)`` of the frame that raised, to point at the bug."""
    where = ""
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        f = frames[-1]
        where = f" (at {f.filename}:{f.lineno} in {f.name})"
    return f"{type(e).__name__}: {_short(str(e))}{where}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _run_coroutine(make_coro: Callable[[], Any]) -> Any:
    """``asyncio.run`` that also works when called from a running loop (a notebook, an async test)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


# ----- episodes ---------------------------------------------------------------------------------------


@dataclass
class _Frame:
    """What one ``reset`` (index 0) or ``step`` returned."""

    observation: Any
    reward: Any
    terminated: Any
    truncated: Any
    info: Any


@dataclass
class _Episode:
    actions: list[Any]
    frames: list[_Frame]


class _Actor:
    """Chooses actions: the expert's, else a seeded pick among the admissible ones, else a space sample."""

    def __init__(self, env: gym.Env[Any, Any], seed: int):
        self.env = env
        self.rng = random.Random(seed)
        env.action_space.seed(seed)

    def __call__(self) -> Any:
        expert = getattr(self.env, "expert_action", None)
        action = expert() if callable(expert) else None
        if isinstance(action, str):
            return action
        admissible = getattr(self.env, "admissible_actions", None)
        options = admissible() if callable(admissible) else None
        if options:
            return self.rng.choice(list(options))
        return self.env.action_space.sample()


def _play(env: gym.Env[Any, Any], seed: int, steps: int, actions: list[Any] | None = None) -> _Episode:
    """Play one episode from ``reset(seed=seed)``: the given actions, or the :class:`_Actor`'s."""
    obs, info = env.reset(seed=seed)
    episode = _Episode([], [_Frame(obs, 0.0, False, False, info)])
    actor = _Actor(env, seed)
    for i in range(steps if actions is None else len(actions)):
        action = actor() if actions is None else actions[i]
        obs, reward, terminated, truncated, info = env.step(action)
        episode.actions.append(action)
        episode.frames.append(_Frame(obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return episode


async def _play_async(env: Any, seed: int, actions: list[Any]) -> _Episode:
    """:func:`_play` through ``reset_async`` / ``step_async``, replaying recorded actions."""
    obs, info = await env.reset_async(seed=seed)
    episode = _Episode([], [_Frame(obs, 0.0, False, False, info)])
    for action in actions:
        obs, reward, terminated, truncated, info = await env.step_async(action)
        episode.actions.append(action)
        episode.frames.append(_Frame(obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return episode


def _first_difference(a: _Episode, b: _Episode) -> str | None:
    """Where two episodes first differ in observation, reward or flags (``info`` may hold timings)."""
    for i, (x, y) in enumerate(zip(a.frames, b.frames, strict=False)):
        where = "after reset" if i == 0 else f"at step {i}"
        for name in ("observation", "reward", "terminated", "truncated"):
            u, v = getattr(x, name), getattr(y, name)
            if not _same(u, v):
                return f"{where} the {name} differs: {_short(u)} vs {_short(v)}"
    if len(a.frames) != len(b.frames):
        return f"one episode ended after {len(a.frames) - 1} steps, the other after {len(b.frames) - 1}"
    return None


def _same(a: Any, b: Any) -> bool:
    try:
        return data_equivalence(a, b, exact=True)
    except Exception:  # values that cannot be compared are not the same
        return False


# ----- the checks -------------------------------------------------------------------------------------


def _check_step_before_reset(env: gym.Env[Any, Any]) -> None:
    """A trainer that forgets ``reset`` must hear about it, not get an episode from stale state."""
    try:
        env.step("Action: look")
    except ResetNeeded:
        return
    except Exception as e:
        raise _Failed(f"step() before reset() raised {_describe(e)}; it must raise agentenv.env.ResetNeeded") from e
    raise _Failed("step() before reset() returned normally; it must raise agentenv.env.ResetNeeded")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _check_gymnasium(env: gym.Env[Any, Any]) -> list[str]:
    """Gymnasium's checker, its warnings kept: agentenv envs are gymnasium envs first."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gymnasium_check_env(env, skip_render_check=True)
        except Exception as e:
            raise _Failed(f"gymnasium's env checker: {_describe(e)}") from e
    found = (_ANSI.sub("", str(w.message)).removeprefix("WARN: ") for w in caught)
    return list(dict.fromkeys(found))


def _check_reset_seeding(env: gym.Env[Any, Any], seed: int, steps: int) -> list[str]:
    """Same seed and actions, same episode: what makes episodes reproducible and GRPO groups comparable."""
    first = _play(env, seed, steps)
    again = _play(env, seed, steps, first.actions)
    diff = _first_difference(first, again)
    if diff:
        raise _Failed(
            f"reset(seed={seed}) and the same {len(first.actions)} actions gave different episodes: {diff}; "
            "draw all randomness from self.np_random"
        )
    others = range(seed + 1, seed + 1 + _SEED_VARIANTS)
    if all(_first_difference(first, _play(env, s, steps, first.actions)) is None for s in others):
        return [
            f"seeds {seed} to {others[-1]} gave identical episodes; reset(seed=...) should pick the task "
            "instance with self.np_random unless the env has a single instance"
        ]
    return []


def _check_observation_format(env: gym.Env[Any, Any], seed: int, steps: int) -> None:
    """Observations cross process and HTTP boundaries and feed the chat template: their shape is fixed."""
    problems: list[str] = []
    for i, frame in enumerate(_play(env, seed, steps).frames):
        where = "reset" if i == 0 else f"step {i}"
        problems += [f"{where}: {p}" for p in observation_problems(frame.observation)]
        if not isinstance(frame.info, dict):
            problems.append(f"{where}: info must be a dict, got {type(frame.info).__name__}")
        if i == 0:
            continue
        if isinstance(frame.reward, bool) or not isinstance(frame.reward, int | float | np.integer | np.floating):
            problems.append(f"{where}: the reward must be a number, got {type(frame.reward).__name__}")
        for flag in ("terminated", "truncated"):
            if not isinstance(getattr(frame, flag), bool | np.bool_):
                problems.append(f"{where}: {flag} must be a bool, got {type(getattr(frame, flag)).__name__}")
    if problems:
        raise _Failed("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))


def _check_bad_actions(env: gym.Env[Any, Any], seed: int) -> None:
    """Environments that fail are data, not exceptions: one bad completion must not kill a training step."""
    problems: list[str] = []
    for label, action in BAD_ACTIONS:
        env.reset(seed=seed)
        try:
            obs, _, terminated, _, info = env.step(action)
        except Exception as e:
            problems.append(f"step({label}) raised {_describe(e)}")
            continue
        problems += [f"step({label}): {p}" for p in observation_problems(obs)]
        if not isinstance(info, dict) or info.get("action_valid") is not False:
            got = info.get("action_valid") if isinstance(info, dict) else f"info of type {type(info).__name__}"
            problems.append(f"step({label}) gave info['action_valid'] = {_short(got)}, expected False")
        if terminated:
            problems.append(f"step({label}) terminated the episode; an invalid action is not an outcome")
    problems += _invalid_action_limit_problems(env, seed)
    if problems:
        raise _Failed("; ".join(problems))


def _invalid_action_limit_problems(env: gym.Env[Any, Any], seed: int) -> list[str]:
    """``max_invalid_actions`` bad actions in a row end the episode as truncated: a limit, not a failure."""
    limit = getattr(env, "max_invalid_actions", None)
    if not isinstance(limit, int) or limit < 1:
        return []
    max_turns = getattr(env, "max_turns", None)
    end = min(limit, max_turns) if isinstance(max_turns, int) and max_turns > 0 else limit
    small = [a for _, a in BAD_ACTIONS if not (isinstance(a, str) and len(a) > 100_000)]
    env.reset(seed=seed)
    for i in range(1, end + 1):
        try:
            _, _, terminated, truncated, _ = env.step(small[(i - 1) % len(small)])
        except Exception as e:
            return [f"invalid action {i} of {end} raised {_describe(e)}"]
        if i < end and (terminated or truncated):
            return [f"the episode ended after {i} invalid actions; max_invalid_actions is {limit}"]
        if i == end and (terminated or not truncated):
            return [
                f"after {end} invalid actions (max_invalid_actions={limit}) the episode gave "
                f"terminated={terminated}, truncated={truncated}; expected truncated=True, terminated=False"
            ]
    return []


def _check_async_twins(env: gym.Env[Any, Any], seed: int, steps: int) -> list[str]:
    """The collector is async and a user's first env is sync: both entry points must agree."""
    for name in ("reset_async", "step_async"):
        if not inspect.iscoroutinefunction(getattr(env, name, None)):
            raise _Failed(f"{type(env).__name__}.{name} is missing or not an async def; subclass agentenv.Env")
    sync = _play(env, seed, steps)
    if _first_difference(sync, _play(env, seed, steps, sync.actions)) is not None:
        return ["not compared with the sync methods: the env does not replay the same episode (see reset_seeding)"]
    async_episode = _run_coroutine(lambda: _play_async(env, seed, sync.actions))
    diff = _first_difference(sync, async_episode)
    if diff:
        raise _Failed(f"reset_async/step_async and reset/step gave different episodes: {diff}")
    return []


def _check_close_idempotent(env: gym.Env[Any, Any], seed: int) -> None:
    """Trainers, pools and ``with`` blocks each close what they hold; a second ``close`` must be harmless."""
    env.reset(seed=seed)
    env.close()
    try:
        env.close()
    except Exception as e:
        raise _Failed(f"the second close() raised {_describe(e)}; close() must be idempotent") from e

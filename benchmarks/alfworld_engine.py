"""ALFWorld engine benchmark: the native engine against the real one (textworld's PddlEnv behind ALFWorld's
wrappers) on the same generated problems, plus memory per live episode.

    python benchmarks/alfworld_engine.py [--problems 12] [--steps 60]    # the real engine needs [alfworld]

Both engines reset each problem and play the same seeded random admissible commands. A native reset counts
parsing the PDDL and building the world (no cache), as a fresh episode of an unseen task costs. Targets:
>= 100x the real engine's steps/s, >= 20x faster resets, 1,000 live episodes in < 1 GB.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc

from rich.console import Console
from rich.table import Table

import agentenv
from agentenv.envs.alfworld.engine import Game, World
from agentenv.envs.alfworld.generator import TASK_TYPES, GeneratedTask, generate
from agentenv.envs.alfworld.pddl import parse_problem


def command_script(task: GeneratedTask, steps: int, seed: int) -> list[str]:
    game = Game(World(parse_problem(task.problem), task.task_desc))
    game.reset()
    rng, commands = random.Random(seed), []
    for _ in range(steps):
        command = rng.choice(game.admissible_commands())
        commands.append(command)
        if game.step(command)[1]:
            break
    return commands


def native(tasks: list[GeneratedTask], scripts: list[list[str]]) -> tuple[list[float], float]:
    resets, step_time, n = [], 0.0, 0
    for task, script in zip(tasks, scripts, strict=True):
        start = time.perf_counter()
        game = Game(World(parse_problem(task.problem), task.task_desc))
        game.reset()
        game.admissible_commands()
        resets.append(time.perf_counter() - start)
        start = time.perf_counter()
        for command in script:
            game.step(command)
            game.admissible_commands()  # the real engine computes the list on every step too
        step_time += time.perf_counter() - start
        n += len(script)
    return resets, n / step_time


def real(tasks: list[GeneratedTask], scripts: list[list[str]]) -> tuple[list[float], float]:
    from agentenv.envs.alfworld.reference import ReferenceEnv, game_json

    resets, step_time, n = [], 0.0, 0
    env = ReferenceEnv()
    try:
        for task, script in zip(tasks, scripts, strict=True):
            start = time.perf_counter()
            env.reset(game_json(task.problem, task.task_desc))
            resets.append(time.perf_counter() - start)
            start = time.perf_counter()
            for command in script:
                env.step(command)
            step_time += time.perf_counter() - start
            n += len(script)
    finally:
        env.close()
    return resets, n / step_time


def live_episode_memory(n: int) -> tuple[float, float]:
    """Bytes per live ALFWorld-v0 episode: n envs reset on n different tasks (worst case, no shared world),
    then n more on one task (the shared-world case), measured with tracemalloc."""
    out = []
    for distinct in (True, False):
        gc.collect()
        tracemalloc.start()
        envs = []
        for i in range(n):
            env = agentenv.make("agentenv/ALFWorld-v0")
            env.reset(seed=i if distinct else 0)
            envs.append(env)
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.append(current / n)
        del envs
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=12, help="generated problems (cycling the task types)")
    parser.add_argument("--steps", type=int, default=60, help="random admissible commands per problem")
    parser.add_argument("--episodes", type=int, default=1000, help="live episodes for the memory figure")
    args = parser.parse_args()
    tasks = [generate(TASK_TYPES[i % 6], "valid_unseen", i) for i in range(args.problems)]
    scripts = [command_script(t, args.steps, i) for i, t in enumerate(tasks)]
    n_resets, n_rate = native(tasks, scripts)
    try:
        r_resets, r_rate = real(tasks, scripts)
    except ImportError as e:
        r_resets, r_rate = [], 0.0
        print(f"real engine skipped: {e}")
    table = Table(title=f"ALFWorld engines on {args.problems} generated problems, {sum(map(len, scripts))} steps")
    for col in ("engine", "reset ms (median)", "steps/s"):
        table.add_column(col, justify="right")
    table.add_row("native (agentenv)", f"{1000 * statistics.median(n_resets):.2f}", f"{n_rate:,.0f}")
    if r_resets:
        table.add_row("real: textworld PddlEnv + ALFWorld wrappers", f"{1000 * statistics.median(r_resets):.0f}",
                      f"{r_rate:,.1f}")
        table.add_row("ratio (native / real)", f"{statistics.median(r_resets) / statistics.median(n_resets):.0f}x "
                      "faster (target >= 20x)", f"{n_rate / r_rate:,.0f}x (target >= 100x)")
    console = Console(width=max(Console().width, 110))
    console.print(table)
    distinct, shared = live_episode_memory(args.episodes)
    mem = Table(title=f"memory per live ALFWorld-v0 episode ({args.episodes} episodes, tracemalloc)")
    for col in ("tasks", "KB per episode", f"{args.episodes} episodes", "target"):
        mem.add_column(col, justify="right")
    mem.add_row("all different (own parsed world each)", f"{distinct / 1024:.0f}",
                f"{distinct * args.episodes / 2**20:.0f} MB", "< 1 GB")
    mem.add_row("one task (shared world)", f"{shared / 1024:.1f}", f"{shared * args.episodes / 2**20:.1f} MB", "")
    console.print(mem)


if __name__ == "__main__":
    main()

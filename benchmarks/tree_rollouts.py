"""ARPO tree rollouts against independent sampling: tokens and wall time per sample, on the code interpreter.

    python benchmarks/tree_rollouts.py [--tasks 8] [--total 16] [--initial 8] [--beam 2] [--alpha 0.5]
        [--beta 0.2] [--max-tokens 96] [--max-turns 8] [--temperature 1.0] [--concurrency 8]
        [--refill one] [--order baseline-first] [--model smollm2-135m-instruct]

Both arms collect ``agentenv/CodeInterpreter-v0`` episodes (Python in a bubblewrap sandbox) with
SmolLM2-135M-Instruct (or ``--model``) behind one embedded policy server (127.0.0.1 only, its
per-episode prefix cache on), through the token-exact OpenAI client, on the same tasks, seeds and sampling
parameters (temperature 1.0 as in ARPO's rollouts, or ``--temperature``; top-10 log-probs), at the same
concurrency and the same samples per task:

* tree: ``ARPOBudget(total=M, initial=N, copies=Z-1, alpha, beta)``: N roots per task, forks of Z-1 copies
  at turn boundaries after a valid tool call (each with probability clip(alpha + beta*dH, 0, 1)), and
  fresh ``global_refill`` roots for the slots left, one at a time once the group is idle (each may fork
  like a root; ``--refill all`` starts them together); forks send ``prefix_hint`` so the server shares the
  parent's cached prefix;
* baseline: the same collector with no branching and ``group_size=M``.

Per sample: tokens generated (what the policy sampled: a fork's copied turns are not counted), tokens
prefilled (the server's ``prefix_tokens["computed"]`` delta over the arm, per sample), their sum, and wall
seconds. The target: the tree arm spends >= 30% fewer generated + prefilled tokens per sample.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from agentenv.collector import CollectConfig, Collector
from agentenv.hooks import TeacherMixing
from agentenv.policies.openai_client import OpenAIPolicy
from agentenv.policy import PolicyOutput, PolicyRequest, SamplingParams
from agentenv.testing import ScriptedPolicy
from agentenv.trainers.arpo import ARPOBudget
from agentenv.trainers.entropy import EntropyProbe
from agentenv.trainers.trees import generated_tokens as sampled_tokens
from agentenv.trajectory import Trajectory

MODEL = "smollm2-135m-instruct"
ENV = "agentenv/CodeInterpreter-v0"
TARGET = 0.30
console = Console(width=max(Console().width, 130))


@contextmanager
def policy_server(model: str, max_batch_size: int) -> Iterator[str]:
    """The embedded policy server (the transformers policy behind agentenv's OpenAI-compatible API) on
    127.0.0.1, in a background thread; yields its base URL."""
    from agentenv.policies.embedded_server import create_embedded_app
    from agentenv.serving import ServerThread

    app = create_embedded_app(model, served_name="bench", max_batch_size=max_batch_size)
    with ServerThread(app) as server:
        yield server.url


def prefix_tokens(url: str) -> Counter[str]:
    models = httpx.get(url + "/v1/models", timeout=30).json()["data"]
    return Counter(models[0]["prefix_tokens"])


class Namespaced:
    """The client, with each request's cache keys (``trajectory_id``, ``prefix_hint``) prefixed by the run:
    both arms use the same trajectory ids (and so sample the same tokens where they play the same episode),
    and without the prefix the second arm would hit the first arm's per-episode cache on the server."""

    def __init__(self, policy: OpenAIPolicy, namespace: str):
        self.policy, self.namespace = policy, namespace

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        ns = self.namespace
        return await self.policy.act([replace(r, trajectory_id=f"{ns}/{r.trajectory_id}",
                                              prefix_hint=f"{ns}/{r.prefix_hint}" if r.prefix_hint else "")
                                      for r in requests])


def generated_tokens(traj: Trajectory) -> int:
    """Tokens the policy sampled for this episode (:func:`~agentenv.trainers.trees.generated_tokens`), less
    the turns the expert played under ``--teacher-turn``."""
    start = traj.branch_turn or 0
    return sampled_tokens(traj) - sum(len(t.completion_ids) for t in traj.turns[start:] if t.actor == "teacher")


def run_arm(name: str, run: int, url: str, args: argparse.Namespace, vocab_size: int) -> dict[str, Any]:
    tree = name == "tree"
    branching = None
    if tree:
        branching = ARPOBudget(total=args.total, initial=args.initial, probe=EntropyProbe(vocab_size),
                               copies=args.beam - 1, alpha=args.alpha, beta=args.beta, seed=args.seed,
                               refill=args.refill)
    cfg = CollectConfig(ENV, n_tasks=args.tasks, group_size=1 if tree else args.total,
                        concurrency=args.concurrency, seed=args.seed, progress="off",
                        env_kwargs={"max_turns": args.max_turns},
                        sampling=SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature,
                                                 top_logprobs=10))
    client = OpenAIPolicy(url + "/v1", model="bench", tokenizer=args.model, concurrency=args.concurrency)
    policy = Namespaced(client, f"run{run}-{name}")
    teacher = None
    if args.teacher_turn >= 0:  # the env's expert acts at that turn: a valid python call (the solver's code)
        expert = ScriptedPolicy(lambda r: r.expert_action or "", name="expert", wants_expert=True)
        teacher = TeacherMixing(expert, beta=lambda turn: float(turn == args.teacher_turn), label_all_states=False)
    collector = Collector(cfg, policy, branching=branching, teacher=teacher)
    before = prefix_tokens(url)
    start = time.perf_counter()
    summary = collector.run()
    wall = time.perf_counter() - start
    after = prefix_tokens(url)
    trajs = collector.trajectories
    ok = [t for t in trajs if t.status == "ok"]
    kinds = Counter(t.kind for t in trajs)
    turns = [t.turns for t in ok]
    valid = sum(turn.action_valid for ts in turns for turn in ts)
    boundaries = sum(len(t.extra.get("arpo", {}).get("boundaries", [])) for t in ok)
    samples = len(trajs)
    played = [turn for t in ok for turn in t.turns[t.branch_turn or 0:]]
    generated = sum(generated_tokens(t) for t in trajs)
    computed = after["computed"] - before["computed"]
    reused = after["reused"] - before["reused"]
    return {
        "samples": samples, "failed": samples - len(ok), "failures": dict(summary.failures), "wall": wall,
        "generated": generated / samples, "prefilled": computed / samples, "reused": reused / samples,
        "total": (generated + computed) / samples, "wall_per_sample": wall / samples,
        "forks": kinds.get("branch", 0), "refills": kinds.get("global_refill", 0), "roots": kinds.get("init", 0),
        "boundaries": boundaries,
        "turns": sum(len(ts) for ts in turns) / max(len(ok), 1),
        "new_turns": sum(len(t.turns) - (t.branch_turn or 0) for t in ok) / max(len(ok), 1),
        "valid": valid / max(sum(len(ts) for ts in turns), 1),
        "policy_s": sum(t.policy_seconds for t in played) / max(len(played), 1),
        "env_s": sum(t.env_seconds for t in played) / max(len(played), 1),
        "success": sum(t.success for t in ok) / max(len(ok), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--total", type=int, default=16, help="M: samples per task (both arms)")
    parser.add_argument("--initial", type=int, default=8, help="N: ARPO's global samples per task")
    parser.add_argument("--beam", type=int, default=2, help="Z: a fork makes Z-1 copies")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--beta", type=float, default=0.2)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--refill", choices=("one", "all"), default="one",
                        help="an idle group's free slots: one global sample at a time (ARPO's loop), or all at once")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=MODEL,
                        help="a catalog name or a model directory (e.g. a DAgger run's RUN/model, which makes "
                             "valid tool calls: the untrained 135M model makes none, so ARPO has nothing to fork)")
    parser.add_argument("--teacher-turn", type=int, default=-1,
                        help="a mechanism check, off by default: the env's expert acts at this turn (a valid python "
                             "call), so that ARPO has a boundary to fork at even when the model makes no valid call")
    parser.add_argument("--order", choices=("baseline-first", "tree-first", "both"), default="baseline-first",
                        help="both: baseline, tree, tree, baseline (results averaged per arm)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # (a timeout's SIGTERM) stop the server on the way out
    from agentenv.policies.catalog import load_tokenizer

    vocab_size = len(load_tokenizer(args.model))
    order = {"baseline-first": ["independent", "tree"], "tree-first": ["tree", "independent"],
             "both": ["independent", "tree", "tree", "independent"]}[args.order]
    runs: dict[str, list[dict[str, Any]]] = {"independent": [], "tree": []}
    start = time.perf_counter()
    with policy_server(args.model, max(args.concurrency, 1)) as url:
        for run, name in enumerate(order):
            runs[name].append(run_arm(name, run, url, args, vocab_size))
            r = runs[name][-1]
            console.print(f"{name}: {r['samples']} samples in {r['wall']:.1f} s"
                          + f"; per played turn: policy {r['policy_s']:.2f} s, env {r['env_s']:.2f} s"
                          + (f" (failed: {r['failures']})" if r["failed"] else ""))
    results = {name: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0] if k != "failures"}
               for name, rs in runs.items()}

    teacher = f", the expert acts at turn {args.teacher_turn}" if args.teacher_turn >= 0 else ""
    table = Table(title=f"{args.model} on {ENV}: {args.tasks} tasks x {args.total} samples, max {args.max_tokens} "
                        f"tokens/turn, <= {args.max_turns} turns, T={args.temperature}, K={args.concurrency}{teacher} "
                        "(per sample = per episode)")
    cols = ("arm", "samples", "roots / forks / refills", "boundaries", "turns (new)", "valid calls", "success",
            "generated", "prefilled", "gen + prefill", "reused", "wall s", "s / sample")
    for col in cols:
        table.add_column(col, justify="right")
    labels = {"independent": "baseline: independent",
              "tree": f"ARPO tree (N={args.initial}, Z={args.beam}, a={args.alpha}, b={args.beta}, "
                      f"refill {args.refill})"}
    for name in ("independent", "tree"):
        r = results[name]
        table.add_row(labels[name], f"{r['samples']:.0f}",
                      f"{r['roots']:.0f} / {r['forks']:.0f} / {r['refills']:.0f}", f"{r['boundaries']:.0f}",
                      f"{r['turns']:.2f} ({r['new_turns']:.2f})", f"{r['valid']:.0%}", f"{r['success']:.0%}",
                      f"{r['generated']:.0f}", f"{r['prefilled']:.0f}", f"{r['total']:.0f}", f"{r['reused']:.0f}",
                      f"{r['wall']:.1f}", f"{r['wall_per_sample']:.2f}")
    tree, base = results["tree"], results["independent"]
    tokens, wall = tree["total"] / base["total"], tree["wall_per_sample"] / base["wall_per_sample"]
    table.add_row("ratio tree / independent", "", "", "", "", "", "",
                  f"{tree['generated'] / base['generated']:.2f}x", f"{tree['prefilled'] / base['prefilled']:.2f}x",
                  f"{tokens:.2f}x", "", "", f"{wall:.2f}x")
    console.print(table)
    met = "MET" if tokens <= 1 - TARGET else "NOT MET"
    console.print(f"generated + prefilled tokens per sample: tree / independent = {tokens:.2f} "
                  f"({1 - tokens:.0%} fewer); target >= {TARGET:.0%} fewer: {met}")
    elapsed = time.perf_counter() - start
    console.print(f"wall time per sample: tree / independent = {wall:.2f}; whole run {elapsed:.0f} s "
                  f"(order: {', '.join(order)})")
    if tree["forks"] == 0:
        console.print("[yellow]the tree arm made no forks: ARPO forks only after a valid tool call that the env "
                      "answered, so its extra samples were all global refills[/yellow]")


if __name__ == "__main__":
    main()

"""Screenshots of each view of the trajectory viewer (`agentenv view`) for the README, so they stay current.

    python scripts/viewer_screenshots.py                 # a demo run built in a temporary folder
    python scripts/viewer_screenshots.py --run RUNS/my-run --out docs/images

Writes, at 1280x800: ``viewer-runs.png`` (two runs' metrics overlaid, a hover tooltip), ``viewer-runs-side.png``
(the same side by side), ``viewer-episodes.png`` (the episodes table), ``viewer-episode.png`` (one episode: its
summary and first turn with the log-prob heat map), ``viewer-episode-turns.png`` (its next turns: the student's
action beside the teacher's, masked tokens) and ``viewer-tree.png`` (a rollout tree and its members).

The demo run's episodes are made up (ALFWorld-like text tokenized with the SmolLM2 tokenizer, log-probs and
entropies drawn at random), so the script needs no model and takes seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentenv.serving import ServerThread
from agentenv.store import TrajectoryStore
from agentenv.trajectory import Trajectory, Turn

VIEWPORT = {"width": 1280, "height": 800}
TOKENIZER = "smollm2-135m-instruct"
DEMO_EPISODE = "t000000-s00"
ENV = "agentenv/ALFWorld-v0"
TASKS = [  # (task type, goal, the actions of a successful episode)
    ("pick_and_place", "put a mug in the coffeemachine",
     ["go to cabinet 1", "open cabinet 1", "take mug 1 from cabinet 1", "go to coffeemachine 1",
      "put mug 1 in/on coffeemachine 1"]),
    ("pick_clean_then_place", "put a clean apple in the fridge",
     ["go to countertop 2", "take apple 1 from countertop 2", "go to sinkbasin 1", "clean apple 1 with sinkbasin 1",
      "go to fridge 1", "put apple 1 in/on fridge 1"]),
    ("look_at_obj_in_light", "look at the book under the desklamp",
     ["go to desk 1", "take book 2 from desk 1", "use desklamp 1"]),
    ("pick_heat_then_place", "put a hot potato on the diningtable",
     ["go to fridge 1", "open fridge 1", "take potato 1 from fridge 1", "go to microwave 1",
      "heat potato 1 with microwave 1", "go to diningtable 1", "put potato 1 in/on diningtable 1"]),
]
SIGHTS = ["a mug 1, a plate 2 and a spoon 1", "nothing special", "a fridge 1 and a countertop 2",
          "a cabinet 1 (open); in it, a mug 1", "a sinkbasin 1 and a microwave 1"]
THOUGHTS = ["I need to find the object first.", "It is probably in here.", "Now I have it.",
            "Next, the target location.", "Almost done.", "Let me check again."]


def _turns(tokenizer: Any, rng: random.Random, task: str, plan: list[str], n_turns: int, success: bool) -> list[Turn]:
    turns = []
    for i in range(n_turns):
        action = plan[i] if i < len(plan) else rng.choice(["look", "inventory", "go to shelf 1"])
        if not success and i == n_turns - 1:
            action = "go to garbagecan 1"
        text = f"Thought: {rng.choice(THOUGHTS)}\nAction: {action}"
        observation = (f"You are in the middle of a room. Your task is to: {task}." if i == 0
                       else f"{plan[i - 1].capitalize()}: done. You see {rng.choice(SIGHTS)}." if i <= len(plan)
                       else f"Nothing happens. You see {rng.choice(SIGHTS)}.")
        last = i == n_turns - 1
        ids = [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]
        prompt = tokenizer.encode(observation, add_special_tokens=False)
        logprobs = [-min(8.0, rng.expovariate(1.6)) if rng.random() > 0.08 else -rng.uniform(3, 9) for _ in ids]
        entropies = [max(0.0, -lp * 0.6 + rng.gauss(0.3, 0.2)) for lp in logprobs]
        turns.append(Turn(
            index=i, observation=[{"role": "user", "content": observation}], action=text,
            prompt_ids=prompt, completion_ids=ids, completion_mask=[1] * len(ids), logprobs=logprobs,
            entropies=entropies, entropy_kind="exact", token_source="sampled", finish_reason="stop",
            tool_calls=[{"name": action.split(" ")[0], "arguments": {"command": action}}],
            feedback=[{"role": "user", "content": "OK." if not last else "You won!" if success else "Time is up."}],
            reward=1.0 if success and last else 0.0, terminated=success and last, truncated=not success and last,
            policy_version=30))
    return turns


def _episode(tokenizer: Any, rng: random.Random, task_index: int, sample: int, success: bool, **fields: Any
             ) -> Trajectory:
    task_type, task, plan = TASKS[task_index % len(TASKS)]
    n_turns = len(plan) if success else len(plan) + rng.randint(1, 2)
    turns = _turns(tokenizer, rng, task, plan, n_turns, success)
    group = f"t{task_index:06d}"
    return Trajectory(
        trajectory_id=fields.pop("trajectory_id", f"{group}-s{sample:02d}"), group_id=group,
        task_id=f"alfworld/{task_type}/{task_index}", task_index=task_index, sample_index=sample, seed=task_index,
        env_id=ENV, policy_id=TOKENIZER, policy_version=30, turns=turns, reward=1.0 if success else 0.0,
        terminated=success, truncated=not success, extra={"task_type": task_type}, **fields)


def _metrics(steps: int, rng: random.Random, speed: float) -> str:
    rows = []
    for s in range(1, steps + 1):
        progress = 1 - math.exp(-s * speed / 12)
        rows.append({"step": s, "success_rate": round(min(1.0, 0.15 + 0.6 * progress + rng.gauss(0, 0.04)), 4),
                     "reward_mean": round(0.1 + 0.65 * progress + rng.gauss(0, 0.04), 4),
                     "loss": round(0.6 * math.exp(-s / 15) + abs(rng.gauss(0, 0.03)), 4),
                     "kl": round(0.002 * s * speed + abs(rng.gauss(0, 0.004)), 5),
                     "entropy": round(1.4 - 0.5 * progress + rng.gauss(0, 0.03), 4),
                     "update_tokens_per_s": round(5200 + rng.gauss(0, 250)), "policy_version": s})
    return "".join(json.dumps(r) + "\n" for r in rows)


def build_demo(root: Path) -> Path:
    """Two runs under ``root``: ``grpo-alfworld`` (metrics and a store of 5 groups of 4 plus a tree group) and
    ``baseline`` (metrics only); returns the first."""
    from agentenv.policies.catalog import load_tokenizer

    tokenizer = load_tokenizer(TOKENIZER)
    rng = random.Random(7)
    run = root / "grpo-alfworld"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": TOKENIZER, "algorithm": "grpo", "env": ENV}))
    (run / "metrics.jsonl").write_text(_metrics(40, rng, 1.0))
    (root / "baseline").mkdir()
    (root / "baseline" / "metrics.jsonl").write_text(_metrics(40, rng, 0.55))

    episodes = [_episode(tokenizer, rng, task, sample, success=(task, sample) == (0, 0) or rng.random() < 0.55)
                for task in range(5) for sample in range(4)]
    showcase = episodes[0]  # DEMO_EPISODE: a teacher's label (DAgger) and a teacher-played turn, not trained on
    showcase.turns[1].teacher_action = "Thought: The mug is usually in a cabinet.\nAction: open cabinet 1"
    teacher_turn = showcase.turns[2]
    teacher_turn.actor, teacher_turn.token_source = "teacher", "teacher"
    teacher_turn.completion_mask = [0] * len(teacher_turn.completion_ids)
    showcase.kind = "mixed_teacher"
    episodes[2].turns[1].is_imagined = True
    episodes[2].kind = "dream"
    failed = episodes[6]
    failed.status, failed.failure_cause, failed.error = "failed", "env_timeout", "TimeoutError: step took 120 s"
    failed.reward, failed.turns[-1].reward = 0.0, 0.0

    root_ep = _episode(tokenizer, rng, 5, 0, success=False, kind="init")
    tree = [root_ep]
    for sample, (parent, branch, success) in enumerate([(0, 2, True), (0, 3, False), (1, 4, True), (0, 1, False)], 1):
        child = _episode(tokenizer, rng, 5, sample, success=success, kind="branch",
                         parent_trajectory_id=tree[parent].trajectory_id, branch_turn=branch)
        child.turns[:branch] = tree[parent].turns[:branch]
        tree.append(child)
    for t in tree:
        t.tree_id = root_ep.trajectory_id
    store = TrajectoryStore(run / "rollouts" / "step-00030")
    store.write(episodes + tree)

    advantages = []
    for group in {t.group_id for t in episodes + tree}:
        members = [t for t in episodes + tree if t.group_id == group]
        mean = sum(t.reward for t in members) / len(members)
        advantages += [{"trajectory_id": t.trajectory_id, "turn": None, "advantage": round(t.reward - mean, 3)}
                       for t in members]
    advantages += [{"trajectory_id": showcase.trajectory_id, "turn": turn.index,
                    "advantage": [round(0.5 + rng.gauss(0, 0.15), 3) for _ in range(sum(turn.completion_mask))]}
                   for turn in showcase.turns]
    (store.directory / "advantages.jsonl").write_text("".join(json.dumps(a) + "\n" for a in advantages))
    return run


def _settle(page: Any) -> None:
    page.wait_for_function("(() => { const v = document.getElementById('view');"
                           " return v.dataset.state !== 'loading' && v.dataset.hash === location.hash; })()")


def screenshots(run: Path, out: Path, compare: Path | None = None, episode_id: str | None = None,
                browser: Any = None) -> list[Path]:
    """Serve ``run`` (and ``compare``) with the viewer, save one PNG per view under ``out``; returns them.
    ``episode_id`` picks the episode shown (default: the successful one with the most trained tokens);
    ``browser`` is a Playwright Chromium to use (default: one started here)."""
    from agentenv.viewer import create_viewer_app

    out.mkdir(parents=True, exist_ok=True)
    with ServerThread(create_viewer_app([run, *([compare] if compare else [])])) as server:
        views = _views(server.url, episode_id)
        if browser is not None:
            return _shoot(browser, server.url, views, out)
        from playwright.sync_api import sync_playwright

        from agentenv.envs.web.browser import find_chromium

        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
            try:
                return _shoot(chromium, server.url, views, out)
            finally:
                chromium.close()


def _views(url: str, episode_id: str | None) -> dict[str, str]:
    """The hash of each view to capture, by name, chosen from what the viewer at ``url`` serves."""
    import httpx

    sources = httpx.get(f"{url}/api/sources").json()
    runs = ",".join([r["id"] for r in sources["runs"] if r["has_metrics"]][:2])
    store = next(s["id"] for s in sources["stores"] if s["split"] in ("train", "store"))
    rows = httpx.get(f"{url}/api/stores/{store}/episodes", params={"limit": 1000}).json()["rows"]
    ranked = sorted(rows, key=lambda r: (not r["success"], -(r.get("trained_tokens") or 0)))
    episode = next((r for r in rows if r["trajectory_id"] == episode_id), ranked[0])
    tree = next((r for r in rows if r.get("tree_id")), None)
    views = {
        "runs": f"/runs?ids={runs}",
        "runs-side": f"/runs?ids={runs}&layout=side",
        "episodes": f"/store/{store}",
        "episode": f"/store/{store}/episode/{episode['trajectory_id']}",
        "episode-turns": f"/store/{store}/episode/{episode['trajectory_id']}",
    }
    if tree:
        views["tree"] = f"/store/{store}/group/{tree['group_id']}"
    return views


def _shoot(browser: Any, url: str, views: dict[str, str], out: Path) -> list[Path]:
    saved = []
    page = browser.new_page(viewport=VIEWPORT)
    try:
        for name, hash_ in views.items():
            page.goto(f"{url}/#{hash_}")
            _settle(page)
            page.mouse.move(0, VIEWPORT["height"] - 1)
            if name == "runs":  # a hover tooltip, as a reader would see it
                box = page.locator("[data-testid=metric-chart] svg").first.bounding_box()
                if box:
                    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.4)
            if name == "episode-turns" and page.locator("[data-testid=turn]").count() > 1:
                # the second turn's action just under the sticky toolbar: a teacher's label, the tokens
                page.locator("[data-testid=turn] .block.action").nth(1).evaluate(
                    "e => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 120)")
            path = out / f"viewer-{name}.png"
            page.screenshot(path=str(path))
            saved.append(path)
    finally:
        page.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a training run dir to show (default: a demo run built here)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="viewer-demo-") as tmp:
        if args.run:
            run, compare, episode = args.run, None, None
        else:
            run, compare, episode = build_demo(Path(tmp)), Path(tmp) / "baseline", DEMO_EPISODE
        for path in screenshots(run, args.out, compare, episode):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

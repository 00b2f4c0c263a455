"""PNG plots of a run's metrics (``RUN/metrics.jsonl`` → ``RUN/plots.png``)."""

from __future__ import annotations

import json
from pathlib import Path

PANELS = [("success_rate", "success (collection)"), ("eval_success", "success (held-out)"),
          ("eval_teacher_agreement", "agrees with teacher (held-out)"),
          ("eval_valid_actions", "valid actions (held-out)"), ("reward_mean", "reward"),
          ("loss", "loss"), ("kl", "KL"), ("entropy", "entropy"), ("clip_fraction", "clip fraction"),
          ("update_tokens_per_s", "update tokens/s"), ("policy_version", "policy version"),
          ("collect_seconds", "collect s"), ("update_seconds", "update s"),
          ("branches_per_group", "branches per group"), ("generated_tokens_per_sample", "tokens sampled per episode"),
          ("boundary_entropy", "entropy at tool boundaries"), ("branch_score_mean", "branching score (mean)"),
          ("predictor_brier", "predictor Brier score")]


def read_metrics(run: str | Path) -> list[dict[str, float]]:
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{run} has no metrics.jsonl: not a training run directory")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_run(run: str | Path) -> Path:
    """Plot every recorded metric against the step; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    records = read_metrics(run)
    panels = [(key, title) for key, title in PANELS if any(key in r for r in records)]
    cols = 3
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        points = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{Path(run).name}")
    fig.tight_layout()
    out = Path(run) / "plots.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

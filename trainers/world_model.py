"""DynaWeb's web world model (WWM): supervised fine-tuning on real transitions, measured against copying the page.

The WWM reads (task, page, action) and writes Δ (:mod:`agentenv.envs.web.delta`): the step's reward, whether
the task ended and the page's edits, optionally after a reasoning trace. Training is plain SFT through the
shared :class:`~.learner.Learner` (``sft=True``): one row per transition, the loss on Δ's tokens only.

The held-out set is split by *task* ((env, seed)), not by transition: pages of one task are near copies of
each other, so a per-transition split would score memorisation. Every evaluation is set against the copy
baseline (Δ empty, reward 0, not done), which is right whenever an action changes nothing and is the bar a
world model has to clear before a policy can learn anything in its dreams.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import sys
import time
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("agentenv.train")

if typing.TYPE_CHECKING:
    from agentenv.envs.web.transitions import Transition

    from .rows import Row

#: the held-out metrics, in the order tables and plots show them
METRICS = ("exact_delta", "valid_delta", "page_exact", "precision", "recall", "f1", "changed_recall",
           "reward_accuracy", "done_accuracy")


@dataclass
class WorldModelConfig:
    """Every option of ``agentenv train wwm``."""

    #: trajectory store directories and labelled transition files (.jsonl) to learn from
    data: list[str] = field(default_factory=list)
    #: the model to fine-tune: a catalog name or a model directory
    model: str = "smollm2-135m-instruct"
    #: the run directory: metrics.jsonl, eval.jsonl, model/, plots.png, config.json, data.json
    out: str = "runs/wwm"
    #: passes over the training transitions
    epochs: int = 3
    #: AdamW's learning rate
    lr: float = 5e-5
    #: 0: full fine-tuning; > 0: LoRA adapters of this rank (the saved model has them merged in)
    lora_rank: int = 0
    #: LoRA's scaling numerator (adapters are scaled by lora_alpha / lora_rank)
    lora_alpha: int = 16
    #: micro-batches are packed to at most this many (padded) tokens; gradients accumulate across them
    micro_batch_tokens: int = 4096
    #: transitions per optimizer step (shuffled every epoch)
    minibatch_rows: int = 8
    #: share of the TASKS ((env_id, seed)) held out: no page of a held-out task is trained on
    holdout: float = 0.2
    #: transitions whose prompt is longer than this are skipped (and counted): they would dominate memory
    max_prompt_tokens: int = 1536
    #: the most tokens generated per held-out prediction
    eval_max_tokens: int = 256
    #: at most this many held-out transitions are evaluated (a seeded sample; None: all)
    eval_transitions: int | None = 64
    #: evaluate the model before training too (the "before" column; an untrained model writes up to
    #: eval_max_tokens per prediction, so this can take longer than an epoch on a CPU)
    eval_before: bool = True
    #: the weights' dtype: float32 or bfloat16
    dtype: str = "float32"
    #: bfloat16 autocast for the forward and backward passes over float32 weights
    amp: bool = False
    #: where the model trains and generates: auto (a CUDA device when there is one), cpu, cuda, cuda:1...
    device: str = "auto"
    #: seeds the task split, the evaluation sample and the shuffles
    seed: int = 0
    #: auto | bar | log | off
    progress: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = [self.data]
        if not self.data:
            raise ValueError("no training data: give --data STORE_OR_JSONL (repeatable) or data=[...]")
        for name in ("epochs", "micro_batch_tokens", "minibatch_rows", "max_prompt_tokens", "eval_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lora_rank < 0 or self.lora_alpha < 1:
            raise ValueError(f"lora_rank must be >= 0 and lora_alpha >= 1, got {self.lora_rank}, {self.lora_alpha}")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout is the share of tasks held out, in (0, 1), got {self.holdout}")
        if self.eval_transitions is not None and self.eval_transitions < 1:
            raise ValueError(f"eval_transitions must be >= 1 or None, got {self.eval_transitions}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.progress not in ("auto", "bar", "log", "off"):
            raise ValueError(f"progress must be auto, bar, log or off, got {self.progress!r}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)


def load_world_model_config(path: str | None = None, overrides: Sequence[str] = (),
                            **values: Any) -> WorldModelConfig:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides (YAML scalars), then ``values``
    (the command line's options). Unknown keys are errors; ``data`` may be a list or comma-separated."""
    import yaml

    from .config import _coerce

    fields = {f.name for f in dataclasses.fields(WorldModelConfig)}
    hints = typing.get_type_hints(WorldModelConfig)
    merged: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a run config is a mapping of option names to values")
        merged.update(loaded)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        value = yaml.safe_load(raw) if raw.strip() else None
        if hints.get(key) is str and value is not None and not isinstance(value, str):
            value = raw.strip()  # YAML reads off/no as booleans; a text option means the text
        merged[key] = value
    merged.update({k: v for k, v in values.items() if v is not None})
    unknown = sorted(set(merged) - fields)
    if unknown:
        raise ValueError(f"unknown world model options: {', '.join(unknown)} (see agentenv/trainers/world_model.py)")
    typed: dict[str, Any] = {}
    for key, value in merged.items():
        if key == "data":
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ValueError(f"option data: {value!r} is not a list of paths")
            typed[key] = [x.strip() for x in items if x.strip()]
        else:
            typed[key] = _coerce(key, value, hints[key])
    return WorldModelConfig(**typed)


# ----- the split -------------------------------------------------------------------------------------------
def task_key(t: Transition) -> tuple[str, str]:
    """The task a transition belongs to: its env and seed (the task id where no seed was recorded)."""
    return t.env_id, str(t.seed) if t.seed is not None else t.task_id


def split_by_task(items: Sequence[Transition], holdout: float, seed: int = 0
                  ) -> tuple[list[Transition], list[Transition]]:
    """(train, held-out): a seeded ``holdout`` share of the tasks (at least one, never all) goes to the
    held-out side with every one of its transitions."""
    tasks = sorted({task_key(t) for t in items})
    if len(tasks) < 2:
        raise ValueError(f"the data holds {len(tasks)} task(s); a held-out split by task needs at least 2")
    random.Random(seed).shuffle(tasks)
    n = min(max(1, round(holdout * len(tasks))), len(tasks) - 1)
    held = set(tasks[:n])
    return [t for t in items if task_key(t) not in held], [t for t in items if task_key(t) in held]


# ----- metrics ---------------------------------------------------------------------------------------------
def score_prediction(t: Transition, text: str | None) -> dict[str, Any]:
    """One prediction against the real transition. ``text`` None is the copy baseline. A Δ that does not
    parse or apply leaves the page unchanged and predicts reward 0, not done (as the dream env does)."""
    from agentenv.envs.web.delta import Delta, DeltaError, apply, page_lines_overlap, parse_delta

    parsed: Delta | None
    if text is None:
        parsed = Delta()
    else:
        try:
            parsed = parse_delta(text)
        except DeltaError:
            parsed = None
    page, valid = t.page, False
    if parsed is not None:
        with contextlib.suppress(DeltaError):
            page, valid = apply(t.page, parsed), True
    guess = parsed if parsed is not None and valid else Delta()
    both, n_pred, n_real = page_lines_overlap(page, t.next_page)
    before = Counter(t.page.split("\n"))
    new_real = Counter(t.next_page.split("\n")) - before
    new_pred = Counter(page.split("\n")) - before
    return {"exact": parsed is not None and parsed == t.delta, "valid": valid, "page_exact": page == t.next_page,
            "both": both, "n_pred": n_pred, "n_real": n_real, "changed": sum(new_real.values()),
            "changed_hit": sum(min(n, new_pred[line]) for line, n in new_real.items()),
            "reward_ok": (guess.reward > 0) == (t.reward > 0), "done_ok": guess.done == t.done}


def aggregate_scores(scores: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means of the per-transition checks; precision, recall, F1 and changed-line recall micro-averaged
    over page lines (an empty denominator counts as perfect)."""
    n = max(len(scores), 1)

    def mean(key: str) -> float:
        return sum(bool(s[key]) for s in scores) / n

    def ratio(num: str, den: str) -> float:
        total = sum(s[den] for s in scores)
        return sum(s[num] for s in scores) / total if total else 1.0

    precision, recall = ratio("both", "n_pred"), ratio("both", "n_real")
    return {"exact_delta": mean("exact"), "valid_delta": mean("valid"), "page_exact": mean("page_exact"),
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "changed_recall": ratio("changed_hit", "changed"), "reward_accuracy": mean("reward_ok"),
            "done_accuracy": mean("done_ok"), "n": float(len(scores))}


def prediction_metrics(items: Sequence[Transition], texts: Sequence[str | None]) -> dict[str, float]:
    """The held-out metrics of predicted Δ texts (None: the copy prediction)."""
    return aggregate_scores([score_prediction(t, x) for t, x in zip(items, texts, strict=True)])


def copy_baseline_metrics(items: Sequence[Transition]) -> dict[str, float]:
    """The metrics of predicting that nothing changes (Δ empty, reward 0, not done); needs no model."""
    return prediction_metrics(items, [None] * len(items))


def predict(policy: Any, items: Sequence[Transition], max_tokens: int = 256,
            on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy Δ texts for ``items``, in batches of the policy's ``max_batch_size`` (``on_batch(n)`` after each)."""
    from agentenv.policy import PolicyRequest, SamplingParams

    sampling = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    size = int(getattr(policy, "max_batch_size", 16))

    async def run() -> list[str]:
        texts: list[str] = []
        for start in range(0, len(items), size):
            chunk = items[start:start + size]
            outs = await policy.act([PolicyRequest(messages=t.messages(), sampling=sampling) for t in chunk])
            texts += [o.text for o in outs]
            if on_batch is not None:
                on_batch(len(chunk))
        return texts

    return asyncio.run(run())


def evaluate_world_model(policy: Any, items: Sequence[Transition], max_tokens: int = 256,
                         details: list[dict[str, Any]] | None = None,
                         on_batch: Callable[[int], None] | None = None) -> dict[str, float]:
    """The held-out metrics of the policy's greedy predictions; ``details`` (if given) receives one record
    per transition (env, action, label and predicted text, exact, applies, page_exact)."""
    texts = predict(policy, items, max_tokens, on_batch)
    scores = [score_prediction(t, x) for t, x in zip(items, texts, strict=True)]
    if details is not None:
        details += [{"env_id": t.env_id, "seed": t.seed, "turn": t.turn, "policy": t.policy, "action": t.action,
                     "label": t.target(), "predicted": x, "exact": s["exact"], "applies": s["valid"],
                     "page_exact": s["page_exact"]} for t, x, s in zip(items, texts, scores, strict=True)]
    return aggregate_scores(scores)


# ----- training --------------------------------------------------------------------------------------------
def sft_rows(items: Sequence[Transition], renderer: Any, label_tokens: Callable[[str], list[int]]
             ) -> list[Row]:
    """One SFT row per transition: the rendered prompt (masked) followed by Δ's tokens and the end token."""
    from .rows import Row

    rows = []
    for i, t in enumerate(items):
        prompt, response = renderer.render(t.messages()), label_tokens(t.target())
        rows.append(Row([*prompt, *response], [0] * len(prompt) + [1] * len(response),
                        [0.0] * (len(prompt) + len(response)), i))
    return rows


class _Progress:
    """A rich bar over training mini-batches and evaluated transitions on a terminal, log lines elsewhere."""

    def __init__(self, mode: str, total: int):
        self.mode = ("bar" if sys.stderr.isatty() else "log") if mode == "auto" else mode
        self.total, self.done = total, 0
        self._every = max(1, total // 20)  # log mode: a line per twentieth of the work
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]wwm"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("[dim]{task.fields[phase]}"), TextColumn("{task.fields[stats]}"),
                                 TimeElapsedColumn(), console=Console(stderr=True))
            self._bar.start()
            self._task = self._bar.add_task("wwm", total=self.total, phase="", stats="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, phase=text)
        elif self.mode == "log":
            log.info("%s", text)

    def advance(self, n: int, stats: str | None = None) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n, **({"stats": stats} if stats is not None else {}))
        elif self.mode == "log" and self.done // self._every != (self.done - n) // self._every:
            log.info("%d/%d %s", self.done, self.total, stats or "")

    def note(self, text: str) -> None:
        if self.mode == "log":
            log.info("%s", text)
        elif self._bar is not None:
            self._bar.update(self._task, stats=text)


def train_world_model(config: WorldModelConfig) -> dict[str, Any]:
    """Fine-tune the world model; returns the data summary, the held-out metrics before and after training,
    the copy baseline's, the per-epoch history and the training speed (see the module docstring)."""
    import torch

    from agentenv.envs.web.transitions import load_transitions
    from agentenv.policies.embedded import TransformersPolicy

    from .learner import Learner, LearnerConfig
    from .sync import save_merged

    c = config
    out = c.out_dir
    if (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size:
        raise FileExistsError(f"{out} already holds a world model run (metrics.jsonl): choose another out")
    items = load_transitions(c.data)
    if not items:
        raise ValueError(f"no transitions in {', '.join(c.data)}")
    torch.manual_seed(c.seed)
    device = c.device if c.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    policy = TransformersPolicy(c.model, device=device, dtype=c.dtype, name="wwm")
    model = policy.model
    if c.lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=c.lora_rank, lora_alpha=c.lora_alpha,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
        policy.model = model  # one module: evaluation generates with the weights being trained
    fits = [t for t in items if len(policy.renderer.render(t.messages())) <= c.max_prompt_tokens]
    train, held = split_by_task(fits, c.holdout, c.seed)
    evaluated = held
    if c.eval_transitions is not None and len(held) > c.eval_transitions:
        chosen = sorted(random.Random(c.seed).sample(range(len(held)), c.eval_transitions))
        evaluated = [held[i] for i in chosen]
    summary = {"transitions": len(items), "skipped_too_long": len(items) - len(fits), "train": len(train),
               "held_out": len(held), "evaluated": len(evaluated),
               "train_tasks": len({task_key(t) for t in train}), "held_out_tasks": len({task_key(t) for t in held}),
               "envs": dict(Counter(t.env_id for t in fits)), "policies": dict(Counter(t.policy for t in fits)),
               "train_page_changes": sum(not t.delta.is_empty for t in train) / max(len(train), 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").write_text("")
    (out / "config.json").write_text(json.dumps(asdict(c), indent=2))
    (out / "data.json").write_text(json.dumps(summary, indent=2))
    rows = sft_rows(train, policy.renderer, policy.label_tokens)
    pad_id = policy.pad_id
    learner = Learner(model, LearnerConfig(lr=c.lr, micro_batch_tokens=c.micro_batch_tokens, epochs=1, amp=c.amp,
                                           seed=c.seed), pad_id=pad_id, sft=True)
    baseline = copy_baseline_metrics(evaluated)
    steps_per_epoch = -(-len(rows) // c.minibatch_rows)
    history: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    train_seconds, train_tokens = 0.0, 0
    with _Progress(c.progress, c.epochs * steps_per_epoch + (c.epochs + c.eval_before) * len(evaluated)) as bar:
        bar.note(f"{len(train)} train / {len(held)} held-out transitions ({summary['held_out_tasks']} tasks), "
                 f"{summary['skipped_too_long']} skipped as too long")

        def evaluate(epoch: int) -> dict[str, float]:
            bar.phase(f"evaluating after epoch {epoch}")
            details.clear()
            model.eval()
            return evaluate_world_model(policy, evaluated, c.eval_max_tokens, details, on_batch=bar.advance)

        def record(entry: dict[str, Any]) -> None:
            with (out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")
            history.append(entry)
            bar.note(f"epoch {entry['epoch']}: " + " ".join(
                f"{k} {entry['eval_' + k]:.3f}" for k in ("exact_delta", "page_exact", "f1")))

        before: dict[str, float] = {}
        after = before
        if c.eval_before:
            started = time.perf_counter()
            before = after = evaluate(0)
            record({"epoch": 0, **_prefixed(before, "eval_"), **_prefixed(baseline, "baseline_"),
                    "eval_seconds": time.perf_counter() - started})
        shuffle = random.Random(c.seed)
        for epoch in range(1, c.epochs + 1):
            bar.phase(f"training epoch {epoch}")
            order = list(range(len(rows)))
            shuffle.shuffle(order)
            nll, trained, seconds, tokens = 0.0, 0, 0.0, 0
            for start in range(0, len(order), c.minibatch_rows):
                chunk = [rows[i] for i in order[start:start + c.minibatch_rows]]
                with policy.updating_weights():
                    metrics = learner.update(chunk, [0.0] * len(chunk))
                n = sum(r.n_trained for r in chunk)
                nll, trained = nll + metrics["loss"] * n, trained + n
                seconds += metrics["update_seconds"]
                tokens += sum(len(r) for r in chunk)
                bar.advance(1, f"loss {metrics['loss']:.3f}")
            train_seconds, train_tokens = train_seconds + seconds, train_tokens + tokens
            started = time.perf_counter()
            after = evaluate(epoch)
            record({"epoch": epoch, "train_loss": nll / max(trained, 1), "train_seconds": seconds,
                    "train_tokens_per_s": tokens / max(seconds, 1e-9), "optimizer_steps": learner.steps,
                    **_prefixed(after, "eval_"), **_prefixed(baseline, "baseline_"),
                    "eval_seconds": time.perf_counter() - started})
    with (out / "eval.jsonl").open("w") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in details)
    if hasattr(model, "merge_adapter"):
        save_merged(model, policy.tokenizer, out / "model")
    else:
        model.save_pretrained(out / "model")
        policy.tokenizer.save_pretrained(out / "model")
    plot_world_model(out)
    asyncio.run(policy.aclose())
    return {"out": str(out), "data": summary, "before": before, "after": after,
            "baseline": baseline, "history": history, "train_seconds": train_seconds,
            "train_tokens_per_s": train_tokens / max(train_seconds, 1e-9)}


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {prefix + k: v for k, v in metrics.items()}


def plot_world_model(run: str | Path) -> Path:
    """``RUN/plots.png``: the train loss and each held-out metric per epoch, the copy baseline dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    records = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    panels = ["train_loss", *METRICS]
    cols = 5
    fig, axes = plt.subplots(2, cols, figsize=(3.6 * cols, 5.6), squeeze=False)
    for ax, key in zip(axes.flat, panels, strict=False):
        name = key if key == "train_loss" else f"eval_{key}"
        points = [(r["epoch"], r[name]) for r in records if name in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label="model")
        base = [r[f"baseline_{key}"] for r in records if f"baseline_{key}" in r]
        if base:
            ax.axhline(base[-1], linestyle="--", color="gray", label="copy baseline")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes.flat[1].legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{Path(run).name}: world model (held-out)")
    fig.tight_layout()
    path = Path(run) / "plots.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

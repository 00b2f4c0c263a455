"""GRPO update benchmark: our Learner's update step against TRL's ``GRPOTrainer`` on the same batch.

    python benchmarks/trainer.py [--quick] [--ragged] [--threads 1] [--steps 3] [--rounds 2] [--device cpu|cuda]

What is measured: the **update** only (re-score the sampled tokens, the clipped policy loss, backward with
gradient accumulation, gradient clipping, one AdamW step), not generation, on a tiny random Llama
(``build_tiny_model``, SmolLM2 vocabulary). Reported: tokens/s (prompt + completion tokens per second, the
forward pass scores them all), trained tokens/s (completion tokens), and peak memory. The ratio is
ours / TRL (target >= 1.0x).

Why it is fair:

* Same model weights, batch (prompts x group size, prompt and completion lengths), advantages
  (group-normalised random rewards, as GRPO computes them) and behaviour log-probs (one no-grad forward of
  the same model, so the ratio is 1, as in TRL's default single-iteration setting).
* Same loss: token-level ratio, clip 0.2 both sides, no dual clip / TRL ``delta``, no KL (``beta=0``), no
  entropy bonus, and the same aggregation: our ``token-mean`` over the whole batch is TRL's ``dapo`` (its
  per-micro-batch loss is divided by the whole generation batch's trained-token count). The first step's
  gradient norm is printed for both sides: equal norms show that both computed the same gradient.
* Same optimisation: AdamW (``torch.optim.AdamW``, TRL ``optim="adamw_torch"``), same lr, no weight decay,
  constant schedule, max grad norm 1.0, float32, no gradient checkpointing (TRL's default turns it on:
  it trades time for memory, and our learner has none), the same micro-batches (rows per micro-batch and
  accumulation steps), the same number of optimizer steps.
* TRL runs its real training loop (``trainer.train()``) with generation replaced by the prepared batch in
  the dict that ``_generate_and_score_completions`` returns; a step is timed from ``on_step_begin`` to
  ``on_step_end`` (its input shuffle/split, every micro-batch's forward/backward, clip, optimizer and
  scheduler step). Ours is timed around ``Learner.update``, which also builds its tensors from Python rows
  (TRL's padding happens in the skipped generation, so that small cost counts against us only).
* Each side runs in its own subprocess (one side's allocations cannot hide the other's), one warm-up step
  then ``--steps`` timed steps; a round's step time is the median step, and the sides alternate for
  ``--rounds`` rounds of which the fastest counts (the machine is shared). One torch thread per side by
  default: on a shared CPU, OpenMP threads spin-waiting on a descheduled peer made two threads both slower
  and several times noisier than one.
* Peak memory is the process's peak RSS from just before the learner / trainer is built to the last step
  (``VmHWM`` after a reset through ``/proc/self/clear_refs``), shown in total and as "update MiB": the peak
  above the RSS at that point, when the model, the batch and each side's libraries are already loaded, so
  it holds what the update itself needs (optimizer state, gradients, activations, the trainer's own
  objects); on CUDA, ``torch.cuda.max_memory_allocated``. Memory is the largest over the rounds (it
  barely varies; time does).

On CPU, read the ratio with care: TRL always scores through its fused LM head (``add_fused_lm_head``), a
Triton kernel on CUDA that never materialises the logits; on CPU it falls back to torch ops on
[tokens x 32768] vocabulary tiles and recomputes them in the backward pass, which costs TRL time and
memory that it would not spend on a GPU. Run with ``--device cuda`` for the comparison that matters there.

With ``--ragged``, completion lengths vary in [C/2, C]: TRL pads every row to the batch's longest
completion, our learner packs rows by a token budget (longest first); only real tokens are counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

console = Console(width=max(Console().width, 110))
LR = 1e-5


@dataclass
class Spec:
    """The batch and model shape shared by both sides."""

    layers: int
    hidden: int
    prompts: int
    group: int
    prompt_len: int
    completion_len: int
    micro_rows: int
    steps: int
    ragged: bool
    threads: int
    device: str

    @property
    def rows(self) -> int:
        return self.prompts * self.group

    @property
    def accumulation(self) -> int:
        return self.rows // self.micro_rows


@dataclass
class Data:
    """One GRPO batch: right-padded ``[rows, P + C]`` tokens, completion lengths, behaviour log-probs."""

    ids: torch.Tensor  # [rows, P + C], completions right-padded with pad_id
    lengths: list[int]  # completion lengths
    old_logp: torch.Tensor  # [rows, P + C]: logp[b, i] = log π(ids[b, i] | ids[b, :i]), 0 at i = 0
    advantages: list[float]
    pad_id: int

    def attention(self, prompt_len: int) -> torch.Tensor:
        width = self.ids.shape[1]
        return (torch.arange(width)[None, :] < torch.tensor([prompt_len + n for n in self.lengths])[:, None]).long()


# ----------------------------------------------------------------------------------------------- data
def load_model(model_dir: Path, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    return model, AutoTokenizer.from_pretrained(model_dir)


@torch.no_grad()
def score(model: Any, ids: torch.Tensor, attention: torch.Tensor, micro_rows: int) -> torch.Tensor:
    """Behaviour log-probs of every token (0 at position 0), from a no-grad forward of the same model."""
    out = []
    for s in range(0, len(ids), micro_rows):
        tok, att = ids[s: s + micro_rows], attention[s: s + micro_rows]
        logits = model(input_ids=tok, attention_mask=att).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, tok[:, 1:, None]).squeeze(-1)
        out.append(torch.cat([torch.zeros_like(logp[:, :1]), logp], 1) * att)
    return torch.cat(out)


def make_data(spec: Spec, model: Any, pad_id: int, vocab: int) -> Data:
    """Random prompts and completions (seeded, so both subprocesses build the same batch), group-normalised
    advantages of random rewards, and behaviour log-probs of the model under test."""
    gen = torch.Generator().manual_seed(1234)
    p, c = spec.prompt_len, spec.completion_len
    ids = torch.full((spec.rows, p + c), pad_id, dtype=torch.long)
    lengths = []
    for g in range(spec.prompts):
        prompt = torch.randint(100, vocab, (p,), generator=gen)
        for k in range(spec.group):
            n = int(torch.randint(c // 2, c + 1, (1,), generator=gen)) if spec.ragged else c
            ids[g * spec.group + k, :p] = prompt
            ids[g * spec.group + k, p: p + n] = torch.randint(100, vocab, (n,), generator=gen)
            lengths.append(n)
    rewards = torch.randn(spec.prompts, spec.group, generator=gen)
    adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)
    data = Data(ids, lengths, torch.empty(0), [float(a) for a in adv.flatten()], pad_id)
    model.eval()
    data.old_logp = score(model, ids.to(spec.device), data.attention(p).to(spec.device), spec.micro_rows).cpu()
    return data


# ----------------------------------------------------------------------------------------------- memory
class Memory:
    """Peak memory over a window: ``VmHWM`` reset through ``/proc/self/clear_refs`` on CPU (peak RSS), the
    allocator's peak on CUDA."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.base = 0.0

    @staticmethod
    def _status(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
        return float("nan")

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated() / 2**20
            return
        Path("/proc/self/clear_refs").write_text("5")
        self.base = self._status("VmRSS")

    def peak(self) -> tuple[float, float]:
        """(peak MiB, peak MiB above the resident memory at ``start``)."""
        if self.cuda:
            torch.cuda.synchronize()
            top = torch.cuda.max_memory_allocated() / 2**20
        else:
            top = self._status("VmHWM")
        return top, top - self.base


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------- ours
def run_ours(spec: Spec, model: Any, data: Data) -> dict[str, Any]:
    from agentenv.trainers.learner import Learner, LearnerConfig
    from agentenv.trainers.losses import LossConfig
    from agentenv.trainers.rows import Row

    p = spec.prompt_len
    rows = []
    for b, n in enumerate(data.lengths):
        width = p + n
        rows.append(Row(data.ids[b, :width].tolist(), [0] * p + [1] * n,
                        [0.0] * p + data.old_logp[b, p:width].tolist(), episode=b))
    config = LearnerConfig(lr=LR, weight_decay=0.0, grad_clip=1.0,
                           micro_batch_tokens=spec.micro_rows * (p + spec.completion_len))
    loss = LossConfig(ratio="token", clip_low=0.2, clip_high=0.2, dual_clip=None, aggregation="token-mean")
    learner = Learner(model, config, loss, pad_id=data.pad_id)
    times, cpu, norms = [], [], []
    for _ in range(spec.steps + 1):
        sync(spec.device)
        t0, c0 = time.perf_counter(), time.process_time()
        metrics = learner.update(rows, data.advantages)
        sync(spec.device)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        norms.append(metrics["grad_norm"])
    return {"times": times[1:], "cpu": cpu[1:], "grad_norm": norms[0]}


# ----------------------------------------------------------------------------------------------- TRL
def trl_batch(spec: Spec, data: Data, device: str) -> dict[str, torch.Tensor]:
    """The dict ``GRPOTrainer._generate_and_score_completions`` returns, padded to the longest completion."""
    p, width = spec.prompt_len, spec.prompt_len + max(data.lengths)
    completion_mask = data.attention(p)[:, p:width]
    return {k: v.to(device) for k, v in {
        "prompt_ids": data.ids[:, :p], "prompt_mask": torch.ones(spec.rows, p, dtype=torch.long),
        "completion_ids": data.ids[:, p:width], "completion_mask": completion_mask,
        "advantages": torch.tensor(data.advantages), "old_per_token_logps": data.old_logp[:, p:width],
        "num_items_in_batch": completion_mask.sum()}.items()}


def trl_trainer(spec: Spec, model: Any, tokenizer: Any, out_dir: str) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=out_dir, report_to=[], use_cpu=spec.device == "cpu", bf16=False, fp16=False,
        gradient_checkpointing=False, per_device_train_batch_size=spec.micro_rows,
        gradient_accumulation_steps=spec.accumulation, num_generations=spec.group,
        max_completion_length=spec.completion_len, max_steps=spec.steps + 1, learning_rate=LR,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, optim="adamw_torch", max_grad_norm=1.0,
        loss_type="dapo", beta=0.0, epsilon=0.2, num_iterations=1, logging_steps=10_000, save_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0, seed=0)
    dataset = Dataset.from_dict({"prompt": ["benchmark"] * spec.rows * (spec.steps + 1)})
    return GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions),
                       args=args, train_dataset=dataset, processing_class=tokenizer)


def run_trl(spec: Spec, model: Any, tokenizer: Any, data: Data) -> dict[str, Any]:
    from transformers import TrainerCallback

    batch = trl_batch(spec, data, spec.device)
    times: list[float] = []
    cpu: list[float] = []
    norms: list[float] = []

    class Timer(TrainerCallback):
        started = cpu_started = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync(spec.device)
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync(spec.device)
            times.append(time.perf_counter() - self.started)
            cpu.append(time.process_time() - self.cpu_started)

    with tempfile.TemporaryDirectory() as out_dir:
        trainer = trl_trainer(spec, model, tokenizer, out_dir)
        # generation is not part of the update: hand TRL the prepared batch in the format it generates
        trainer._generate_and_score_completions = lambda _inputs: dict(batch)
        clip = trainer._clip_grad_norm

        def clip_and_record(m: Any) -> Any:
            norm = clip(m)
            norms.append(float(norm))
            return norm

        trainer._clip_grad_norm = clip_and_record
        trainer.add_callback(Timer())
        trainer.train()
    return {"times": times[1:], "cpu": cpu[1:], "grad_norm": norms[0]}


# ----------------------------------------------------------------------------------------------- driver
def import_side(side: str) -> None:
    """Load the side's libraries before the memory baseline, so that their code is not counted as the
    update's memory."""
    if side == "ours":
        import agentenv.trainers.learner  # noqa: F401
    else:
        import datasets  # noqa: F401
        from trl import GRPOConfig, GRPOTrainer  # noqa: F401


def child(spec: Spec, side: str, model_dir: Path) -> None:
    torch.set_num_threads(spec.threads)
    torch.manual_seed(0)
    import_side(side)
    model, tokenizer = load_model(model_dir, spec.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data = make_data(spec, model, pad, model.config.vocab_size)
    memory = Memory(spec.device)
    memory.start()
    result = run_ours(spec, model, data) if side == "ours" else run_trl(spec, model, tokenizer, data)
    result["memory"] = memory.peak()
    tokens = spec.rows * spec.prompt_len + sum(data.lengths)
    print("RESULT " + json.dumps({**result, "tokens": tokens, "trained": sum(data.lengths)}), flush=True)


def spawn(spec: Spec, side: str, model_dir: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--side", side, "--model-dir", str(model_dir),
           "--spec", json.dumps(asdict(spec))]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"the {side} side failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the shortest median step time (the machine is shared: slower rounds were disturbed),
    with the largest memory of all rounds."""
    fastest = min(results, key=lambda r: per_step(r, "times"))
    return {**fastest, "memory": [max(r["memory"][i] for r in results) for i in (0, 1)]}


def per_step(r: dict[str, Any], key: str) -> float:
    """The median step (wall or CPU seconds): a step slowed down by another process on the machine does not
    count."""
    return statistics.median(r[key])


def report(spec: Spec, results: dict[str, dict[str, Any]]) -> None:
    cuda = spec.device.startswith("cuda")
    table = Table(title=f"GRPO update, {spec.layers} layers x {spec.hidden} hidden, {spec.prompts} prompts x "
                        f"{spec.group} samples, prompt {spec.prompt_len} + completion "
                        f"{'<= ' if spec.ragged else ''}{spec.completion_len} tokens, {spec.micro_rows} rows per "
                        f"micro-batch x {spec.accumulation}, {spec.steps} steps, {spec.device}, "
                        f"{spec.threads} threads")
    for col in ("side", "s/step", "CPU s/step", "tok/s", "trained tok/s", "tok/CPU-s",
                "peak GPU MiB" if cuda else "peak RSS MiB", "update MiB", "grad norm step 1"):
        table.add_column(col, justify="right")
    for side, r in results.items():
        wall, cpu = per_step(r, "times"), per_step(r, "cpu")
        table.add_row(side, f"{wall:.3f}", f"{cpu:.3f}", f"{r['tokens'] / wall:.0f}", f"{r['trained'] / wall:.0f}",
                      f"{r['tokens'] / cpu:.0f}", f"{r['memory'][0]:.0f}", f"{r['memory'][1]:.0f}",
                      f"{r['grad_norm']:.6f}")
    ours, trl = results["ours"], results["TRL"]
    speed = per_step(trl, "times") / per_step(ours, "times")
    cpu_speed = per_step(trl, "cpu") / per_step(ours, "cpu")
    table.add_row("ours / TRL", "", "", f"{speed:.2f}x", f"{speed:.2f}x", f"{cpu_speed:.2f}x",
                  f"{ours['memory'][0] / trl['memory'][0]:.2f}x", f"{ours['memory'][1] / trl['memory'][1]:.2f}x", "")
    console.print(table)
    console.print(f"throughput ratio ours / TRL: {speed:.2f}x (target >= 1.0x; by CPU time {cpu_speed:.2f}x); "
                  f"peak memory ours / TRL: {ours['memory'][0] / trl['memory'][0]:.2f}x "
                  f"(update MiB {ours['memory'][1] / trl['memory'][1]:.2f}x; lower is better)")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller model and batch, fewer steps (a smoke run)")
    parser.add_argument("--ragged", action="store_true", help="completion lengths vary in [C/2, C]")
    parser.add_argument("--steps", type=int, help="timed optimizer steps per side (after one warm-up step)")
    parser.add_argument("--rounds", type=int, help="alternating rounds of both sides; the best counts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per side (1: on a shared machine, OpenMP threads spin-waiting on a "
                             "descheduled peer make 2+ threads slower and far noisier)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.side:
        child(Spec(**json.loads(args.spec)), args.side, args.model_dir)
        return
    try:
        import trl
    except ImportError:
        print("TRL is not installed; this benchmark compares against it: pip install 'agentenv[bench]' "
              "(trl==1.16.0)", file=sys.stderr)
        sys.exit(2)
    from agentenv.policies.catalog import build_tiny_model

    quick = args.quick
    spec = Spec(layers=2 if quick else 4, hidden=64 if quick else 256, prompts=2 if quick else 4,
                group=4, prompt_len=32 if quick else 64, completion_len=32 if quick else 64,
                micro_rows=4, steps=args.steps or 3, ragged=args.ragged,
                threads=args.threads, device=args.device)
    console.print(f"TRL {trl.__version__}, torch {torch.__version__}: {spec}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", layers=spec.layers, hidden=spec.hidden)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "TRL": []}
        for _ in range(args.rounds or (1 if quick else 2)):
            for name, side in (("ours", "ours"), ("TRL", "trl")):
                runs[name].append(spawn(spec, side, model_dir))
                r = runs[name][-1]
                console.print(f"{name}: {per_step(r, 'times'):.3f} s/step, {per_step(r, 'cpu'):.3f} CPU s/step, "
                              f"peak {r['memory'][0]:.0f} MiB, update {r['memory'][1]:.0f} MiB")
    report(spec, {name: best(r) for name, r in runs.items()})


if __name__ == "__main__":
    main()

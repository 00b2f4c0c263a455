"""Real FSDP update steps on whatever devices exist, with their time and peak memory.

    torchrun --standalone --nproc_per_node N benchmarks/fsdp_step.py [--model smollm2-135m-instruct]
        [--rows 16] [--tokens 512] [--micro-batch-tokens 4096] [--steps 3] [--dtype float32] [--amp]
    python benchmarks/fsdp_step.py ...        # one process, unsharded (on a GPU if there is one): the baseline

Under torchrun each rank takes ``cuda:LOCAL_RANK`` with NCCL when CUDA is available, else the CPU with gloo
(the same code path as ``agentenv train`` under torchrun). ``--model tiny`` uses a 2-layer random model.
The rows are random tokens (the first half prompt, the second half trained) with random advantages; their
behaviour log-probs are recomputed by the pre-update policy, so the first step starts at ratio 1. Rank 0
prints each step's seconds, tokens/s, gradient norm and loss, then every rank's peak memory (CUDA's
allocator peak on a GPU, the process's peak RSS on a CPU).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from typing import Any

import torch

from agentenv.trainers.distributed import DistributedContext
from agentenv.trainers.learner import Learner, LearnerConfig
from agentenv.trainers.losses import LossConfig
from agentenv.trainers.rows import Row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalog name, directory, or tiny")
    parser.add_argument("--rows", type=int, default=16, help="rows per update (all ranks together)")
    parser.add_argument("--tokens", type=int, default=512, help="tokens per row")
    parser.add_argument("--micro-batch-tokens", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=3, help="updates (the first includes warm-up)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast over float32 weights")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from agentenv.policies.catalog import build_tiny_model, resolve_model

    dist = DistributedContext.from_env().init()
    if args.model == "tiny":
        path = dist.broadcast_object(str(build_tiny_model(tempfile.mkdtemp())) if dist.is_main else None)
    else:
        path = str(resolve_model(args.model)) if dist.is_main else None
        path = dist.broadcast_object(path)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype))
    if not dist.enabled and torch.cuda.is_available():
        model.to("cuda")  # the one-GPU baseline (the training loop itself runs one process on the CPU)
    parameters = sum(p.numel() for p in model.parameters())
    learner = Learner(model, LearnerConfig(lr=1e-6, micro_batch_tokens=args.micro_batch_tokens, amp=args.amp),
                      LossConfig(), pad_id=0, dist=dist)
    generator = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    half = args.tokens // 2
    rows = [Row(torch.randint(1, vocab, (args.tokens,), generator=generator).tolist(),
                [0] * half + [1] * (args.tokens - half), [0.0] * args.tokens, episode=i, recompute_old_logp=True)
            for i in range(args.rows)]
    advantages = (torch.randn(args.rows, generator=generator)).tolist()
    device = learner.device
    if dist.is_main:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"{args.model}: {parameters / 1e6:.1f}M parameters, {dist.world_size} process(es), backend "
              f"{dist.backend if dist.enabled else 'none'}, {name}; {args.rows} rows x {args.tokens} tokens, "
              f"{args.dtype}{' + bf16 autocast' if args.amp else ''}", flush=True)
    for step in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        metrics = learner.update(rows, advantages)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        if dist.is_main:
            print(f"step {step + 1}: {seconds:.3f} s, {args.rows * args.tokens / seconds:,.0f} tokens/s, "
                  f"grad_norm {metrics['grad_norm']:.4g}, loss {metrics['loss']:.4g}, "
                  f"ratio_mean {metrics['ratio_mean']:.4f}", flush=True)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        where = "GPU allocator peak"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        where = "peak RSS"
    peaks = dist.gather_objects(peak)
    if dist.is_main:
        print(f"{where} per rank (GiB): " + ", ".join(f"{p:.2f}" for p in peaks), flush=True)
    dist.close()


if __name__ == "__main__":
    main()

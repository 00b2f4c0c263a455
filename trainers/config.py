"""The run configuration: every option of ``agentenv train`` in one typed, documented place.

A run is configured from defaults, then a YAML file, then ``key=value`` overrides (values parsed as YAML
scalars). An unknown key is an error, and so is an option the chosen algorithm does not use (for example
``omega`` for GRPO): a knob that silently does nothing is worse than no knob.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: options every algorithm uses; the others belong to the algorithms that declare them
COMMON = frozenset({
    "algo", "env", "model", "out", "env_kwargs", "eval_env_kwargs", "steps", "tasks_per_step", "group_size",
    "concurrency", "max_tokens", "temperature", "window", "lr", "weight_decay", "grad_clip",
    "micro_batch_tokens", "epochs", "dtype", "lora_rank", "lora_alpha", "checkpoint_every", "eval_every",
    "eval_tasks", "seed", "resume", "progress", "policy", "max_staleness",
    "max_minutes", "amp", "minibatch_rows", "eval_env", "ray", "ray_workers", "group_policy", "min_usable",
    "refill_retries",
})


@dataclass
class TrainConfig:
    """Every option of a run. Each algorithm starts from its preset (§9.8, the ``preset`` of its class)."""

    #: grpo | gigpo | hgpo | dagger | arpo | aepo | appo | trace | dynaweb
    algo: str = "grpo"
    #: the environment id (or an env server URL) and its keyword arguments
    env: str = "agentenv/ALFWorld-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    #: the env id of the held-out evaluation (None: env), e.g. the real web for a policy trained in dreams
    eval_env: str | None = None
    #: keyword arguments of the held-out evaluation env (default: env_kwargs)
    eval_env_kwargs: dict[str, Any] | None = None
    #: a catalog name or a model directory (trained in-process)
    model: str = "smollm2-135m-instruct"
    #: the URL of a policy server that collects (vLLM or ``agentenv serve-policy``) serving ``model``; each
    #: update is pushed to it through the Serving weight update. None: the in-process transformers policy
    policy: str | None = None
    #: 0: synchronous; k >= 1: collection of step k+1 overlaps the update of step k, and episodes sampled
    #: more than k weight versions behind the learner are dropped
    max_staleness: int = 0
    #: play the episodes on a Ray cluster (``local``, ``auto`` or the head's ``HOST:PORT``); its env workers
    #: are kept from step to step. Needs ``policy`` (the workers reach the server, not this process's model)
    ray: str | None = None
    #: env workers on the cluster (None: as many as it places); ``concurrency`` is split between them
    ray_workers: int | None = None
    #: the run directory: metrics.jsonl, checkpoints/, rollouts/, eval/, plots.png
    out: str = "runs/train"
    #: training steps (one collection and one update each)
    steps: int = 10
    #: a wall-clock budget: no new step starts after this many minutes (None: run all ``steps``)
    max_minutes: float | None = None
    #: tasks per step; each gets ``group_size`` episodes (the group of GRPO-family advantages)
    tasks_per_step: int = 4
    group_size: int = 4
    #: what a group does with episodes that failed for infrastructure reasons (:mod:`.group_policy`):
    #: "mask" leaves them out; "refill" re-runs them on a fresh env (up to refill_retries times) first.
    #: Either way they never get a reward of 0, and a group with fewer than min_usable usable episodes is
    #: dropped from the update
    group_policy: str = "mask"
    min_usable: int = 1
    refill_retries: int = 2
    #: episodes run at once by the collector
    concurrency: int = 16
    #: tokens per action, and the sampling temperature (the update re-scores at the same temperature)
    max_tokens: int = 32
    temperature: float = 1.0
    #: past turns kept in each prompt (None: all); HGPO's ``history`` may not exceed it
    window: int | None = None
    #: AdamW's learning rate and weight decay, and the gradient-norm clip
    lr: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    #: micro-batches are packed to at most this many (padded) tokens
    micro_batch_tokens: int = 4096
    #: passes over each step's rows
    epochs: int = 1
    #: rows per optimizer step: an update makes ceil(rows / minibatch_rows) steps per epoch over shuffled
    #: rows (None: one step per epoch on all rows, the on-policy default)
    minibatch_rows: int | None = None
    #: the weights' dtype (bfloat16 weights also keep AdamW's state in bfloat16)
    dtype: str = "float32"
    #: mixed precision: the update's forward and backward run in bfloat16 autocast over float32 weights and
    #: optimizer state (1.6x faster on a CPU with AVX512-BF16; the re-scored log-probs then differ slightly
    #: from the float32 policy's, which the clipped ratio absorbs)
    amp: bool = False
    #: 0: full fine-tuning; > 0: LoRA adapters of this rank (peft)
    lora_rank: int = 0
    #: LoRA's scaling numerator (the adapters are scaled by lora_alpha / lora_rank)
    lora_alpha: int = 16
    # --- loss (RL algorithms) ---
    #: token: PPO's per-token ratio | sequence: GSPO's exp(mean log-ratio) over a row's trained tokens
    ratio: str = "token"
    #: the ratio's clip range [1 - clip_low, 1 + clip_high], and the dual-clip bound c for negative
    #: advantages (None: off)
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = 3.0
    #: token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm (also DAgger's SFT)
    aggregation: str = "token-mean"
    #: KL in the loss against the frozen start (the base model under LoRA): kl | mse | low_var_kl | abs,
    #: weighted by kl_coef
    kl: str | None = None
    kl_coef: float = 0.0
    #: KL in the reward instead: β of r_tok ← r_tok − β·k1(old, ref), adaptive towards a target KL if set
    kl_reward_coef: float = 0.0
    kl_reward_target: float | None = None
    kl_reward_horizon: int = 10_000
    #: weight of the entropy bonus
    entropy_coef: float = 0.0
    # --- advantages ---
    #: GRPO's normalisation of the outcome within a group (see advantages.py)
    norm: str = "std_sample"
    #: discount of step returns (GiGPO, HGPO)
    gamma: float = 0.95
    #: GiGPO: weight of the step advantage added to the episode advantage
    omega: float = 1.0
    #: GiGPO/HGPO normalisation: mean_norm | mean_std_norm
    mode: str = "mean_norm"
    #: HGPO: K, the longest shared history (in observations) of a context group, and α of its (k+1)^α weight
    history: int = 2
    alpha: float = 1.0
    #: HGPO: add GRPO's episode advantage as level 0
    base_group: bool = False
    # --- DAgger ---
    #: the teacher: "expert" (the env's), or any policy spec (a model directory, a server URL...)
    teacher: str = "expert"
    #: the probability that the teacher acts at a turn of step i: beta0 * beta_decay ** i
    beta0: float = 1.0
    beta_decay: float = 0.5
    # --- tree rollouts (ARPO, AEPO, APPO, TRACE): group_size is the budget M of episodes per task ---
    #: global samples started from the prompt (N; the rest of the budget goes to branches). None: group_size
    initial_rollouts: int | None = None
    #: ARPO/AEPO: copies considered per branch event is beam_size − 1 (Z − 1)
    beam_size: int = 2
    #: ARPO: P(branch) = clip(branch_probability + entropy_weight·ΔH, 0, 1) (α and β of §2b)
    branch_probability: float = 0.5
    entropy_weight: float = 0.2
    #: tokens of a segment whose entropy is summed (ARPO's k = 20)
    entropy_window: int = 20
    #: paper_probe: ΔH from the tokens generated after the tool result; code_lagged: from the segment
    #: before it (the released code, one round behind)
    entropy_timing: str = "paper_probe"
    #: a fork keeps its root's initial entropy (the paper); False: its first own segment's (the code)
    branch_inherits_h_init: bool = True
    #: ARPO/AEPO: an idle group's free slots get one global sample at a time, which may fork into the slots
    #: after it (the released loop); all: every refill at once (more episodes in flight, no forks from them)
    refill: str = "one"
    #: top log-probs recorded per sampled token (entropy proxies); 0: use the exact entropies
    top_logprobs: int = 0
    #: soft: plain GRPO over every sequence; hard: a shared token gets its sequences' mean advantage, once
    attribution: str = "soft"
    # --- AEPO ---
    #: entropy pre-monitoring: a pilot episode per task sizes its global samples (m = k·σ(β(H_root − H_tool)))
    dynamic_rollouts: bool = False
    pre_monitor_beta: float = 0.5
    #: the consecutive-branch penalty's slope (P shrinks by this factor per consecutive branching round)
    branch_penalty: float = 0.05
    #: standard | entropy_balanced (AEPO's stop-gradient upper clip)
    clip_mode: str = "standard"
    #: α of the entropy-aware advantage A·(1 + α·z(H)); 0: off
    entropy_advantage: float = 0.0
    #: where z(H) is normalised: micro | mini (the mini-batch, the default) | global (the whole step)
    entropy_norm_scope: str = "mini"
    #: reproduce the released AEPO code, where the entropy-aware advantage silently does nothing (§3h)
    compat_aepo_entropy_noop: bool = False
    # --- APPO ---
    #: the policy Ω compares the sampler with: trainer_recompute (the released code: the trainer's log-probs
    #: at θ_old, numerical drift only) | post_update_policy (the policy after the previous update against
    #: the one before it: a real policy change; our reading, §4h)
    omega_reference: str = "post_update_policy"
    omega_gamma: float = 1.0
    omega_clip: float = 0.2
    #: the reward scale M of the released code (inert for outcome-only rewards; off by default)
    reward_scale: bool = False
    reward_scale_discount: float = 0.9
    #: the future-KL token reweighting (FIPO): decay rate (γ_f = 2^(−1/decay)), clip, weight b, high-only
    #: lower bound, the safety threshold; future_kl_weight 0 turns it off
    future_kl_decay: float = 64.0
    future_kl_clip: float = 0.2
    future_kl_weight: float = 0.0
    future_kl_high_only: bool = True
    safety_thresh: float = 6.0
    #: drop every sequence with more than one dual-clipped token from the loss
    drop_dual_clipped: bool = False
    # --- TRACE [RECONSTRUCTED] ---
    #: share of the budget spent on prompt roots (the rest on turn-prefix anchors)
    root_fraction: float = 0.5
    #: roots per prompt at least
    min_roots: int = 2
    #: mixed_prob (P(a sibling group is mixed)) | pair_count (expected success/failure pairs)
    contrast: str = "mixed_prob"
    #: beta (Beta-Bernoulli per prefix) | learned (a small MLP over hashed prefix features)
    predictor: str = "beta"
    # --- DynaWeb [RECONSTRUCTED expert interleaving] ---
    #: group_inject: a real expert episode joins the group as a member with reward 1 (ratios against π_old's
    #: log-probs, recomputed at the update) | aux_sft: the expert episode adds aux_sft_coef·NLL to the loss
    expert_mode: str = "group_inject"
    #: p_mix: the probability that a group gets one real expert episode
    expert_mix: float = 0.25
    #: λ of the aux_sft mode
    aux_sft_coef: float = 0.1
    #: a trajectory store directory of real expert episodes (matched to tasks by task id)
    expert_data: str | None = None
    # --- bookkeeping ---
    #: a checkpoint every N steps (and always at the end); 0: only at the end
    checkpoint_every: int = 0
    #: a greedy evaluation on eval_tasks held-out tasks before training, every N steps and at the end
    eval_every: int = 0
    eval_tasks: int = 16
    #: seeds the tasks, the sampling, the teacher's coins and the mini-batch shuffle
    seed: int = 0
    #: continue the run in ``out`` from its newest checkpoint
    resume: bool = False
    #: auto | bar | log | off
    progress: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "tasks_per_step", "group_size", "concurrency", "max_tokens", "micro_batch_tokens",
                     "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.minibatch_rows is not None and self.minibatch_rows < 1:
            raise ValueError(f"minibatch_rows must be >= 1, got {self.minibatch_rows}")
        if self.ray is not None and self.policy is None:
            raise ValueError("ray= plays the episodes on Ray workers, which reach a policy server, not the model "
                             "in this process: serve it (agentenv serve-policy) and set policy=URL")
        if self.ray_workers is not None and (self.ray is None or self.ray_workers < 1):
            raise ValueError("ray_workers must be >= 1 and applies with ray=")
        if self.max_staleness < 0:
            raise ValueError(f"max_staleness must be >= 0, got {self.max_staleness}")
        from .group_policy import GROUP_POLICIES

        if self.group_policy not in GROUP_POLICIES:
            raise ValueError(f"group_policy must be one of {', '.join(GROUP_POLICIES)}, got {self.group_policy!r}")
        if not 1 <= self.min_usable <= self.group_size:
            raise ValueError(f"min_usable must be in [1, group_size={self.group_size}], got {self.min_usable}")
        if self.refill_retries < 0:
            raise ValueError(f"refill_retries must be >= 0, got {self.refill_retries}")
        if self.initial_rollouts is not None and not 1 <= self.initial_rollouts <= self.group_size:
            raise ValueError(f"initial_rollouts must be in [1, group_size={self.group_size}], got "
                             f"{self.initial_rollouts}")
        choices = {"entropy_timing": ("paper_probe", "code_lagged"), "attribution": ("soft", "hard"),
                   "clip_mode": ("standard", "entropy_balanced"), "entropy_norm_scope": ("micro", "mini", "global"),
                   "omega_reference": ("post_update_policy", "trainer_recompute"),
                   "contrast": ("mixed_prob", "pair_count"), "predictor": ("beta", "learned"),
                   "ratio": ("token", "sequence"), "expert_mode": ("group_inject", "aux_sft"),
                   "refill": ("one", "all")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 <= self.expert_mix <= 1:
            raise ValueError(f"expert_mix must be in [0, 1], got {self.expert_mix}")
        if self.aux_sft_coef < 0:
            raise ValueError(f"aux_sft_coef must be >= 0, got {self.aux_sft_coef}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)


def load_config(algo: str, path: str | None = None, overrides: list[str] | None = None,
                uses: frozenset[str] | None = None) -> tuple[TrainConfig, set[str]]:
    """Defaults, then the algorithm's preset (its released recipe), then the YAML file at ``path``, then
    ``key=value`` overrides; returns the config and the keys that were set explicitly. ``uses`` names the
    algorithm's own options besides :data:`COMMON` (default: the registered algorithm's)."""
    import yaml

    from .algorithm import algorithm_options, algorithm_preset

    if uses is None:
        uses = algorithm_options(algo)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a run config is a mapping of option names to values")
        values.update(loaded)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        key = key.strip()
        value = yaml.safe_load(raw) if raw.strip() else None
        if key in fields and typing.get_type_hints(TrainConfig).get(key) is str and not isinstance(value, str) \
                and value is not None:
            value = raw.strip()  # YAML reads off/no/on as booleans; a text option means the text
        values[key] = value
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown options: {', '.join(unknown)} (see agentenv/trainers/config.py)")
    if "algo" in values and values["algo"] != algo:
        raise ValueError(f"the config names algorithm {values['algo']!r} but {algo!r} was asked for")
    unused = sorted(set(values) - COMMON - uses)
    if unused:
        raise ValueError(f"{algo} does not use these options: {', '.join(unused)}")
    hints = typing.get_type_hints(TrainConfig)
    merged = {**algorithm_preset(algo), **values}
    typed = {key: _coerce(key, value, hints[key]) for key, value in merged.items()}
    return TrainConfig(**{**typed, "algo": algo}), set(values)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """A YAML value as the option's type (YAML reads ``5e-5`` as a string, and ``1`` where 1.0 is meant)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for kind in (bool, int, float, str):
        if kind in options:
            if kind is bool and isinstance(value, bool):
                return value
            if kind in (int, float) and not isinstance(value, bool):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if kind is int and number != int(number):
                    continue
                return kind(number)
            if kind is str and isinstance(value, str):
                return value
    if isinstance(value, dict) and any(typing.get_origin(o) is dict for o in options):
        return value
    raise ValueError(f"option {key}: {value!r} is not a {hint}")

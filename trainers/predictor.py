"""The success predictor p̂(h) shared across prompts and depths (``shared/algorithms.md`` §5(b), §9.7).

**[RECONSTRUCTED]**: TRACE's predictor is described in its abstract only as "a shared predictor of conditional
success probability from prefix histories"; the Beta-Bernoulli cold start, the BCE objective and the replay
window are the spec's reconstruction.

A prefix ``h`` is a task (the root) plus the turns generated so far. :class:`BetaBernoulliPredictor` counts
outcomes per exact prefix (the cold start and fallback); :class:`LearnedPredictor` generalises across prefixes
from their text. Both are also usable as a curriculum filter (prompts with p̂ near 0.5).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

EPS = 1e-6


@dataclass(frozen=True)
class Prefix:
    """A root (the task or prompt text, ``turns == ()``) or a turn prefix of a rollout."""

    root: str
    turns: tuple[str, ...] = ()

    @property
    def depth(self) -> int:
        return len(self.turns)

    def key(self) -> str:
        """A stable id of the exact prefix (the same in every process, unlike ``hash``)."""
        return hashlib.sha1(json.dumps([self.root, *self.turns]).encode()).hexdigest()


@runtime_checkable
class SuccessPredictor(Protocol):
    """``predict`` gives P(terminal success | prefix); ``update`` learns from (prefix, outcome) pairs."""

    def predict(self, prefixes: Sequence[Prefix]) -> np.ndarray: ...

    def update(self, pairs: Sequence[tuple[Prefix, float]]) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _check_targets(pairs: Sequence[tuple[Prefix, float]]) -> np.ndarray:
    y = np.asarray([float(t) for _, t in pairs], dtype=np.float64)
    if y.size and (y.min() < 0 or y.max() > 1 or not np.isfinite(y).all()):
        raise ValueError("success targets must lie in [0, 1]")
    return y


def _bce(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if y.size else 0.0


# ----- Beta-Bernoulli counts ------------------------------------------------------------------------------
class BetaBernoulliPredictor:
    """Beta(a, b) per exact prefix: ``p̂ = (a + successes) / (a + b + successes + failures)``.

    An unseen prefix backs off to its longest seen shorter prefix of the same root (a turn prefix starts
    from what is known of its parents), then to the prior mean. Targets may be fractional (a leaf mean).
    """

    def __init__(self, prior_a: float = 1.0, prior_b: float = 1.0) -> None:
        if prior_a <= 0 or prior_b <= 0:
            raise ValueError(f"Beta prior parameters must be > 0, got ({prior_a}, {prior_b})")
        self.prior_a, self.prior_b = float(prior_a), float(prior_b)
        self.counts: dict[str, list[float]] = {}  # prefix key -> [successes, failures]

    def _one(self, prefix: Prefix) -> float:
        for k in range(prefix.depth, -1, -1):
            seen = self.counts.get(Prefix(prefix.root, prefix.turns[:k]).key())
            if seen is not None:
                return (self.prior_a + seen[0]) / (self.prior_a + self.prior_b + seen[0] + seen[1])
        return self.prior_a / (self.prior_a + self.prior_b)

    def predict(self, prefixes: Sequence[Prefix]) -> np.ndarray:
        return np.asarray([self._one(h) for h in prefixes], dtype=np.float64)

    def update(self, pairs: Sequence[tuple[Prefix, float]]) -> dict[str, float]:
        """Adds ``y`` to the successes and ``1 - y`` to the failures; the loss is the BCE before the update."""
        y = _check_targets(pairs)
        loss = _bce(self.predict([h for h, _ in pairs]), y)
        for (h, _), t in zip(pairs, y.tolist(), strict=True):
            c = self.counts.setdefault(h.key(), [0.0, 0.0])
            c[0] += t
            c[1] += 1.0 - t
        return {"loss": loss, "pairs": float(len(pairs)), "prefixes": float(len(self.counts))}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        counts = {k: list(v) for k, v in self.counts.items()}
        return {"prior_a": self.prior_a, "prior_b": self.prior_b, "counts": counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prior_a, self.prior_b = float(state["prior_a"]), float(state["prior_b"])
        self.counts = {k: [float(v[0]), float(v[1])] for k, v in state["counts"].items()}


# ----- learned predictor ----------------------------------------------------------------------------------
_WORD = re.compile(r"\w+")
MAX_DEPTH_ONE_HOT = 8


def _grams(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def _hashed(texts: Sequence[str], namespace: str, dim: int) -> dict[int, float]:
    """An L2-normalised hashed bag of unigrams and bigrams (crc32: stable across processes and runs)."""
    bag: dict[int, float] = {}
    for text in texts:
        for g in _grams(text):
            j = zlib.crc32(f"{namespace}\x00{g}".encode()) % dim
            bag[j] = bag.get(j, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in bag.values()))
    return {j: v / norm for j, v in bag.items()} if norm else bag


def featurise(prefix: Prefix, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse features ``(indices, values)`` of width ``2 * dim + MAX_DEPTH_ONE_HOT + 2``.

    The root's and the turns' bags are separate namespaces (and blocks), each L2-normalised; then a one-hot
    of ``min(depth, 8)`` and ``depth / (1 + depth)``.
    """
    root = _hashed([prefix.root], "root", dim)
    turns = _hashed(prefix.turns, "turn", dim)
    idx = [*root, *(dim + j for j in turns), 2 * dim + min(prefix.depth, MAX_DEPTH_ONE_HOT),
           2 * dim + MAX_DEPTH_ONE_HOT + 1]
    val = [*root.values(), *turns.values(), 1.0, prefix.depth / (1.0 + prefix.depth)]
    return np.asarray(idx, dtype=np.int64), np.asarray(val, dtype=np.float32)


class LearnedPredictor:
    """``p̂(h) = sigmoid(MLP(features(h)))``, trained online with BCE on a replay of recent updates.

    The spec suggests a frozen text encoder + 2-layer MLP at lr 1e-4. Here the encoder is a hashed bag of
    word unigrams and bigrams (root and turns hashed separately) plus depth features: no model download,
    no extra dependency, and fast on a CPU. Because the first layer is trained from scratch on sparse
    inputs (not on top of pretrained embeddings), the default lr is 1e-3: at 1e-4 the two-prefix toy of
    §5(f).6 is still at p̂ = 0.72 / 0.28 after 200 updates (1e-3 passes 0.9 / 0.1 in about 40).
    ``update`` appends its pairs to a replay of the last ``window_steps`` calls and trains ``epochs``
    shuffled passes over it (mini-batches of ``batch_size``). Deterministic for a fixed ``seed``:
    initialisation and shuffling use private generators, never torch's global one.
    """

    def __init__(self, dim: int = 2**12, hidden: int = 64, lr: float = 1e-3, window_steps: int = 4, seed: int = 0,
                 epochs: int = 4, batch_size: int = 256) -> None:
        if dim < 1 or hidden < 1 or window_steps < 1 or epochs < 1 or batch_size < 1:
            raise ValueError("dim, hidden, window_steps, epochs and batch_size must all be >= 1")
        self.config = {"dim": dim, "hidden": hidden, "lr": lr, "window_steps": window_steps, "seed": seed,
                       "epochs": epochs, "batch_size": batch_size}
        self.dim, self.width = dim, 2 * dim + MAX_DEPTH_ONE_HOT + 2
        self.epochs, self.batch_size = epochs, batch_size
        self._gen = torch.Generator().manual_seed(seed)
        self.model = torch.nn.Sequential(torch.nn.Linear(self.width, hidden), torch.nn.ReLU(),
                                         torch.nn.Linear(hidden, 1))
        with torch.no_grad():  # PyTorch's default init, from the private generator
            for layer in self.model:
                if not isinstance(layer, torch.nn.Linear):
                    continue
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=self._gen)
                layer.bias.uniform_(-bound, bound, generator=self._gen)
        self.optim = torch.optim.Adam(self.model.parameters(), lr=lr)
        # one entry per update call: (feature indices, feature values, targets)
        self.replay: deque[list[tuple[np.ndarray, np.ndarray, float]]] = deque(maxlen=window_steps)

    def _dense(self, feats: Sequence[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
        x = torch.zeros(len(feats), self.width)
        for row, (idx, val) in enumerate(feats):
            x[row, torch.from_numpy(idx)] = torch.from_numpy(val)
        return x

    def predict(self, prefixes: Sequence[Prefix]) -> np.ndarray:
        if not prefixes:
            return np.zeros(0)
        with torch.no_grad():
            logits = self.model(self._dense([featurise(h, self.dim) for h in prefixes])).squeeze(-1)
        return torch.sigmoid(logits).double().numpy()

    def update(self, pairs: Sequence[tuple[Prefix, float]]) -> dict[str, float]:
        """Train on the replay (including ``pairs``); ``loss`` is the mean BCE of the last epoch."""
        y = _check_targets(pairs)
        self.replay.append([(*featurise(h, self.dim), t) for (h, _), t in zip(pairs, y.tolist(), strict=True)])
        data = [item for step in self.replay for item in step]
        if not data:
            return {"loss": 0.0, "pairs": 0.0, "replay": 0.0}
        x = self._dense([(i, v) for i, v, _ in data])
        t = torch.tensor([v for _, _, v in data], dtype=torch.float32)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
        self.model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(data), generator=self._gen)
            total = 0.0
            for start in range(0, len(data), self.batch_size):
                rows = order[start : start + self.batch_size]
                self.optim.zero_grad()
                loss = loss_fn(self.model(x[rows]).squeeze(-1), t[rows])
                (loss / len(rows)).backward()
                self.optim.step()
                total += float(loss.detach())
        self.model.eval()
        return {"loss": total / len(data), "pairs": float(len(pairs)), "replay": float(len(data))}

    def state_dict(self) -> dict[str, Any]:
        """Model, optimiser, shuffling generator and replay (tensors and plain types: ``torch.save`` handles it,
        and ``torch.load(weights_only=True)`` reads it back)."""
        return {"config": dict(self.config), "model": self.model.state_dict(), "optim": self.optim.state_dict(),
                "generator": self._gen.get_state(),
                "replay": [[(torch.from_numpy(i), torch.from_numpy(v), t) for i, v, t in step] for step in self.replay]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint; ``dim`` and ``hidden`` must match (the saved optimiser brings its lr)."""
        saved = state["config"]
        if (saved["dim"], saved["hidden"]) != (self.config["dim"], self.config["hidden"]):
            raise ValueError(f"predictor config mismatch: saved {saved}, this one {self.config}")
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self._gen.set_state(state["generator"])
        self.replay.clear()
        for step in state["replay"]:
            self.replay.append([(np.asarray(i, dtype=np.int64), np.asarray(v, dtype=np.float32), float(t))
                                for i, v, t in step])


# ----- calibration ----------------------------------------------------------------------------------------
def calibration(predicted: np.ndarray, outcomes: np.ndarray, bins: int = 5) -> dict[str, float]:
    """Brier score ``mean((p - y)^2)`` and expected calibration error ``Σ_b (n_b / N) |mean p_b - mean y_b|``
    over ``bins`` equal-width bins of ``p`` on [0, 1] (the last one closed), for logging p̂ at allocation
    time against the outcomes. Empty inputs give NaN."""
    p = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(outcomes, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions but {y.size} outcomes")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if p.size == 0:
        return {"brier": float("nan"), "ece": float("nan"), "n": 0.0}
    which = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return {"brier": float(((p - y) ** 2).mean()), "ece": float(ece), "n": float(p.size)}

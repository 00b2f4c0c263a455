"""The embedded transformers policy on a tiny random model with the real SmolLM2 tokenizer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch

from agentenv.policies import make_policy
from agentenv.policies.embedded import TransformersPolicy
from agentenv.policy import Continuation, Policy, PolicyError, PolicyOutput, PolicyRequest, SamplingParams


def ask(text: str, **sampling: Any) -> PolicyRequest:
    return PolicyRequest([{"role": "user", "content": text}], SamplingParams(**sampling))


def reference_logprobs(policy: TransformersPolicy, out: PolicyOutput, temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / T) at each completion position, from one unpadded forward pass."""
    assert out.prompt_ids is not None and out.completion_ids is not None
    ids = torch.tensor([out.prompt_ids + out.completion_ids])
    with torch.no_grad():
        logits = policy.model(input_ids=ids).logits[0].float()
    n = len(out.prompt_ids)
    return torch.log_softmax(logits[n - 1 : n - 1 + len(out.completion_ids)] / temperature, dim=-1)


def test_transformers_policy_satisfies_the_protocol(tiny_policy: TransformersPolicy) -> None:
    assert isinstance(tiny_policy, Policy)
    assert tiny_policy.version == 0 and not tiny_policy.wants_expert
    assert tiny_policy.name == "model"  # the directory's name
    assert {2, 0} <= tiny_policy.eos_ids  # <|im_end|> and <|endoftext|>


async def test_concurrent_act_calls_are_batched(tiny_policy: TransformersPolicy) -> None:
    tiny_policy.batch_sizes.clear()
    outs = await asyncio.gather(*(tiny_policy.act([ask(f"hello {i}", max_tokens=4, seed=i)]) for i in range(8)))
    assert len(outs) == 8 and all(len(o) == 1 for o in outs)
    assert max(tiny_policy.batch_sizes) > 1
    assert sum(size * n for size, n in tiny_policy.batch_sizes.items()) == 8


async def test_one_act_call_with_many_requests_is_one_batch(tiny_policy: TransformersPolicy) -> None:
    tiny_policy.batch_sizes.clear()
    outs = await tiny_policy.act([ask("x " * i, max_tokens=3, seed=i) for i in range(1, 6)])
    assert len(outs) == 5 and dict(tiny_policy.batch_sizes) == {5: 1}


async def test_same_seed_gives_the_same_output(tiny_policy: TransformersPolicy) -> None:
    request = ask("Tell me a story.", max_tokens=12, seed=123, top_logprobs=2)
    [a] = await tiny_policy.act([request])
    # the second time it shares a batch with other (unseeded, longer) requests
    b, *_ = await tiny_policy.act([request, ask("something much longer than the other prompt " * 3, max_tokens=20)])
    assert a.completion_ids == b.completion_ids and a.text == b.text
    assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    [c] = await tiny_policy.act([ask("Tell me a story.", max_tokens=12, seed=124)])
    assert c.completion_ids != a.completion_ids


@pytest.mark.parametrize("temperature", [1.0, 0.7])
async def test_logprobs_equal_a_forward_pass_of_prompt_and_completion(
    tiny_policy: TransformersPolicy, temperature: float
) -> None:
    # different prompt lengths, so the batch is left-padded
    reqs = [ask("hi " * (1 + 7 * i), max_tokens=10, temperature=temperature, seed=i) for i in range(3)]
    for out in await tiny_policy.act(reqs):
        assert out.logprobs is not None and out.completion_ids is not None and out.entropies is not None
        ref = reference_logprobs(tiny_policy, out, temperature)
        sampled = ref.gather(-1, torch.tensor(out.completion_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(out.logprobs), sampled, atol=1e-4)
        exact_entropy = -(ref.exp() * ref).sum(-1)
        assert torch.allclose(torch.tensor(out.entropies), exact_entropy, atol=1e-4)
        assert out.entropy_kind == "exact" and all(h >= 0 for h in out.entropies)


async def test_top_logprobs_are_sorted_and_hold_the_sampled_token(tiny_policy: TransformersPolicy) -> None:
    [sampled, greedy] = await tiny_policy.act([
        ask("Pick a word.", max_tokens=8, top_logprobs=20, seed=5),
        ask("Pick a word.", max_tokens=8, top_logprobs=3, temperature=0),
    ])
    for out, k in ((sampled, 20), (greedy, 3)):
        assert out.top_ids is not None and out.top_logprobs is not None and out.logprobs is not None
        assert out.completion_ids is not None
        assert len(out.top_ids) == len(out.top_logprobs) == len(out.completion_ids)
        for token, lp, ids, lps in zip(out.completion_ids, out.logprobs, out.top_ids, out.top_logprobs, strict=True):
            assert len(ids) == len(lps) == k and lps == sorted(lps, reverse=True)
            if token in ids:
                assert lps[ids.index(token)] == pytest.approx(lp, abs=1e-6)
    # greedy picks the argmax, so the sampled token is always the top one
    assert greedy.top_ids is not None and greedy.completion_ids is not None
    assert [ids[0] for ids in greedy.top_ids] == greedy.completion_ids
    [no_top] = await tiny_policy.act([ask("Pick a word.", max_tokens=2)])
    assert no_top.top_ids is None and no_top.top_logprobs is None


async def test_greedy_is_deterministic_without_a_seed(tiny_policy: TransformersPolicy) -> None:
    [a] = await tiny_policy.act([ask("Count:", max_tokens=6, temperature=0)])
    [b] = await tiny_policy.act([ask("Count:", max_tokens=6, temperature=0)])
    assert a.completion_ids == b.completion_ids


async def test_a_tiny_top_p_keeps_only_the_most_likely_token(tiny_policy: TransformersPolicy) -> None:
    [greedy, nucleus] = await tiny_policy.act([
        ask("Count:", max_tokens=6, temperature=0),
        ask("Count:", max_tokens=6, top_p=1e-6, seed=1),
    ])
    assert nucleus.completion_ids == greedy.completion_ids
    assert nucleus.logprobs == [0.0] * 6 and nucleus.entropies == [0.0] * 6


async def test_a_continuation_prompt_extends_the_previous_tokens(tiny_policy: TransformersPolicy) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    [first] = await tiny_policy.act([PolicyRequest(messages, SamplingParams(max_tokens=6, seed=0))])
    assert first.prompt_ids is not None and first.completion_ids is not None
    history = [*messages, {"role": "assistant", "content": first.text}, {"role": "user", "content": "And then?"}]
    cont = Continuation(first.prompt_ids, first.completion_ids, n_messages=3)
    [second] = await tiny_policy.act([PolicyRequest(history, SamplingParams(max_tokens=3), continuation=cont)])
    assert second.prompt_ids is not None
    previous = first.prompt_ids + first.completion_ids
    assert second.prompt_ids[: len(previous)] == previous
    tail = tiny_policy.tokenizer.decode(second.prompt_ids[len(previous):])
    assert tail.endswith("<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n")


async def test_max_tokens_is_respected_with_finish_reason_length(tiny_policy: TransformersPolicy) -> None:
    outs = await tiny_policy.act([ask("Go on", max_tokens=n, seed=n) for n in (1, 5, 9)])
    assert [len(o.completion_ids or []) for o in outs] == [1, 5, 9]
    assert {o.finish_reason for o in outs} == {"length"}
    assert outs[1].text == tiny_policy.tokenizer.decode(outs[1].completion_ids, skip_special_tokens=True)


class _PreferToken(torch.nn.Module):
    """Wraps a causal LM and adds a large bonus to one token's logit (to force an end of sequence)."""

    def __init__(self, model: Any, token: int):
        super().__init__()
        self.inner, self.token, self.config = model, token, model.config

    def forward(self, **kwargs: Any) -> Any:
        out = self.inner(**kwargs)
        out.logits[..., self.token] += 100.0
        return out


async def test_generation_stops_at_eos_and_keeps_it(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir))
    policy.model = _PreferToken(policy.model, 2)
    [out] = await policy.act([ask("Stop now", max_tokens=10, seed=0)])
    assert out.completion_ids == [2] and out.finish_reason == "stop" and out.text == ""
    assert out.logprobs == [pytest.approx(0.0, abs=1e-6)]
    await policy.aclose()


async def test_a_prompt_over_the_context_fails_only_its_own_request(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir))
    policy.max_context = 64
    long, short = ask("word " * 100, max_tokens=4), ask("hi", max_tokens=200, seed=0)
    results = await asyncio.gather(policy.act([long]), policy.act([short]), return_exceptions=True)
    assert isinstance(results[0], PolicyError) and "context of 64 tokens" in str(results[0])
    [out] = results[1]  # type: ignore[misc]
    # the completion is cut where the context ends
    assert out.finish_reason == "length" and len(out.prompt_ids) + len(out.completion_ids) == 64
    await policy.aclose()


async def test_a_generation_error_fails_the_batch_with_policy_error(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir))

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    policy.model = type("Broken", (), {"__call__": staticmethod(broken), "config": policy.model.config})()
    with pytest.raises(PolicyError, match="out of memory"):
        await policy.act([ask("hi", max_tokens=2)])
    await policy.aclose()


async def test_act_after_aclose_raises(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir))
    [out] = await policy.act([ask("hi", max_tokens=2, seed=0)])
    assert len(out.completion_ids or []) == 2
    await policy.aclose()
    await policy.aclose()  # idempotent
    with pytest.raises(PolicyError, match="closed"):
        await policy.act([ask("hi", max_tokens=2)])


def test_make_policy_builds_a_transformers_policy_from_a_directory(tiny_model_dir: Path) -> None:
    for spec in (str(tiny_model_dir), f"hf:{tiny_model_dir}"):
        policy = make_policy(spec, name="tiny", max_batch_size=4)
        assert isinstance(policy, TransformersPolicy)
        assert policy.name == "tiny" and policy.max_batch_size == 4


def test_bad_constructor_arguments_are_errors(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        TransformersPolicy(str(tiny_model_dir), dtype="float33")
    with pytest.raises(ValueError, match="max_batch_size"):
        TransformersPolicy(str(tiny_model_dir), max_batch_size=0)


def _episode_turn(text: str, tid: str, previous: PolicyOutput | None = None, history: list[Any] | None = None,
                  **sampling: Any) -> PolicyRequest:
    messages = history or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    cont = None
    if previous is not None:
        assert previous.prompt_ids is not None and previous.completion_ids is not None
        cont = Continuation(previous.prompt_ids, previous.completion_ids, n_messages=len(messages) - 1)
    return PolicyRequest(messages, SamplingParams(**sampling), continuation=cont, trajectory_id=tid)


async def test_next_turn_of_an_episode_reuses_its_prefix_with_the_same_logprobs(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir))
    try:
        firsts = await policy.act([_episode_turn("Hello " * (1 + 5 * i), f"ep{i}", max_tokens=5, seed=i)
                                   for i in range(3)])
        assert policy.prefix_tokens["reused"] == 0
        seconds = []
        for i, first in enumerate(firsts):
            history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello " * (1 + 5 * i)},
                       {"role": "assistant", "content": first.text}, {"role": "user", "content": f"Turn {i}?"}]
            seconds.append(_episode_turn("", f"ep{i}", first, history, max_tokens=6, seed=10 + i, top_logprobs=3))
        computed = policy.prefix_tokens["computed"]
        # one batch mixing reused prefixes of different lengths with a fresh episode
        outs = await policy.act([*seconds, _episode_turn("Fresh start", "ep-new", max_tokens=6, seed=99)])
        previous = sum(len(f.prompt_ids or []) + len(f.completion_ids or []) - 1 for f in firsts)
        assert policy.prefix_tokens["reused"] == previous
        assert policy.prefix_tokens["computed"] - computed == sum(len(o.prompt_ids or []) for o in outs) - previous
        for out in outs:  # the same numbers as one unpadded forward pass over the whole sequence
            ref = reference_logprobs(policy, out)
            sampled = ref.gather(-1, torch.tensor(out.completion_ids)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(out.logprobs), sampled, atol=1e-4)
        policy.clear_prefix_cache()
        again = await policy.act(seconds)  # recomputed from scratch: same seeds, same tokens
        assert [o.completion_ids for o in again] == [o.completion_ids for o in outs[:3]]
    finally:
        await policy.aclose()


async def test_a_prompt_that_diverges_from_the_kept_prefix_reuses_only_the_common_part(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir))
    try:
        [first] = await policy.act([_episode_turn("Tell me about cats and dogs", "ep", max_tokens=4, seed=0)])
        [other] = await policy.act([_episode_turn("Tell me about birds", "ep", max_tokens=4, seed=0)])
        common = 0
        while first.prompt_ids[common] == other.prompt_ids[common]:  # type: ignore[index]
            common += 1
        assert 0 < common < len(other.prompt_ids or [])
        assert policy.prefix_tokens["reused"] == common
        ref = reference_logprobs(policy, other)
        sampled = ref.gather(-1, torch.tensor(other.completion_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(other.logprobs), sampled, atol=1e-4)
    finally:
        await policy.aclose()


async def test_a_fork_shares_its_parents_cached_prefix_without_taking_it(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir))
    try:
        [parent] = await policy.act([_episode_turn("Count the apples in the basket", "parent", max_tokens=5, seed=0)])
        fork = [*(parent.prompt_ids or []), *(parent.completion_ids or [])[:2]]  # a fork two tokens into the turn
        children = [PolicyRequest([], SamplingParams(max_tokens=4, seed=s), prompt_ids=fork, trajectory_id=f"c{s}",
                                  prefix_hint="parent") for s in range(2)]
        for child in children:  # one at a time: each finds the parent's cache, which stays for the next
            [out] = await policy.act([child])
            ref = reference_logprobs(policy, out)
            sampled = ref.gather(-1, torch.tensor(out.completion_ids)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(out.logprobs), sampled, atol=1e-4)
        assert policy.prefix_tokens["reused"] == 2 * (len(fork) - 1)
        assert "parent" in policy._prefixes
        await policy.act([PolicyRequest([], SamplingParams(max_tokens=2, seed=0), prompt_ids=fork,
                                                     trajectory_id="x")])
        assert policy.prefix_tokens["reused"] == 2 * (len(fork) - 1)  # no hint, no sharing
    finally:
        await policy.aclose()


async def test_the_prefix_cache_stays_within_its_budget(tiny_model_dir: Path) -> None:
    policy = TransformersPolicy(str(tiny_model_dir), prefix_cache_mb=0.05)  # ~50 KB: a few short prefixes
    try:
        await policy.act([_episode_turn("word " * 20, f"ep{i}", max_tokens=3, seed=i) for i in range(20)])
        kept = sum(p.nbytes for p in policy._prefixes.values())
        assert 0 < len(policy._prefixes) < 20 and kept <= 0.05 * 2**20
        off = TransformersPolicy(str(tiny_model_dir), prefix_cache_mb=0)
        await off.act([_episode_turn("word", "ep", max_tokens=3, seed=0)])
        assert not off._prefixes
        await off.aclose()
    finally:
        await policy.aclose()

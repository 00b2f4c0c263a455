"""check_env: a good env passes, and each broken env fails exactly the check named for what it breaks."""

import random

import pytest

from agentenv import CheckReport, EnvContractError, check_env
from agentenv.checker import CHECKS
from agentenv.env import Env, StepResult
from agentenv.messages import observation


class CountEnv(Env):
    """Say ``go`` as many times as the seeded target asks; reward 1 on reaching it. Keeps the contract."""

    def __init__(self, **kwargs):
        super().__init__(max_turns=30, max_invalid_actions=3, **kwargs)
        self.target = self.count = 0

    def _reset(self, options):
        self.target, self.count = int(self.np_random.integers(2, 12)), 0
        return observation(f"Say go {self.target} times.", admissible=["go"]), {}

    def admissible_actions(self):
        return ["go"]

    def expert_action(self):
        return "Action: go"

    def _step(self, action):
        self.count += 1
        done = self.count == self.target
        return StepResult(observation(f"count {self.count}", admissible=["go"]), float(done), terminated=done)


class ChokesOnControlCharacters(CountEnv):
    def parse_action(self, text):
        if any(ord(c) < 32 for c in text):
            raise UnicodeError("cannot handle control characters")
        return super().parse_action(text)


class RewardFromGlobalRandom(CountEnv):
    def _step(self, action):
        result = super()._step(action)
        result.reward = random.random()  # not self.np_random: the seed does not fix it
        return result


class MalformedStepObservation(CountEnv):
    def _step(self, action):
        result = super()._step(action)
        result.observation = {"messages": [{"role": "narrator", "content": 7}]}  # type: ignore[typeddict-item]
        return result


class CloseTwiceRaises(CountEnv):
    def close(self):
        if self._closed:
            raise RuntimeError("already closed")
        super().close()


class IgnoresTheSeed(CountEnv):
    def _reset(self, options):
        self.target, self.count = 5, 0
        return observation("Say go 5 times.", admissible=["go"]), {}


def _failed(report: CheckReport) -> list[str]:
    return [r.name for r in report.failed]


def test_good_env_passes_every_check_without_warnings():
    report = check_env(CountEnv())
    assert report.ok, str(report)
    assert [r.name for r in report.results] == list(CHECKS)
    assert report.warnings == []
    report.raise_if_failed()


def test_registered_id_is_checked_with_fresh_envs():
    report = check_env("Maze-v0")
    assert report.ok, str(report)
    assert report.env == "agentenv/Maze-v0"


def test_env_that_raises_on_a_bad_action_fails_bad_actions_never_raise():
    report = check_env(ChokesOnControlCharacters())
    assert _failed(report) == ["bad_actions_never_raise"]
    message = report["bad_actions_never_raise"].message
    assert "binary garbage" in message and "UnicodeError" in message


def test_env_not_reproducible_under_one_seed_fails_reset_seeding():
    report = check_env(RewardFromGlobalRandom())
    assert _failed(report) == ["reset_seeding"]
    assert "the reward differs" in report["reset_seeding"].message
    assert report["async_twins"].warnings  # not comparable, said instead of blamed twice


def test_env_with_malformed_observation_fails_observation_format():
    report = check_env(MalformedStepObservation())
    assert _failed(report) == ["observation_format"]
    assert "messages[0] must be" in report["observation_format"].message


def test_env_whose_second_close_raises_fails_close_idempotent():
    report = check_env(CloseTwiceRaises())
    assert _failed(report) == ["close_idempotent"]
    assert "already closed" in report["close_idempotent"].message


def test_env_that_ignores_the_seed_passes_with_a_warning():
    report = check_env(IgnoresTheSeed())
    assert report.ok, str(report)
    assert any(w.startswith("reset_seeding: seeds 0 to 3 gave identical episodes") for w in report.warnings)


def test_env_that_was_already_reset_fails_step_before_reset():
    env = CountEnv()
    env.reset(seed=0)
    assert _failed(check_env(env)) == ["step_before_reset"]


def test_episode_that_ends_before_the_invalid_action_limit_fails_bad_actions_never_raise():
    class TruncatesEarly(CountEnv):
        def _invalid(self, why):
            result = super()._invalid(why)
            result.truncated = self.invalid_actions >= 2
            return result

    report = check_env(TruncatesEarly())
    assert _failed(report) == ["bad_actions_never_raise"]
    assert "ended after 2 invalid actions; max_invalid_actions is 3" in report["bad_actions_never_raise"].message


def test_invalid_action_that_does_not_truncate_at_the_limit_fails():
    class NeverTruncates(CountEnv):
        def _invalid(self, why):
            result = super()._invalid(why)
            result.truncated = False
            return result

    report = check_env(NeverTruncates())
    assert _failed(report) == ["bad_actions_never_raise"]
    assert "expected truncated=True" in report["bad_actions_never_raise"].message


def test_skipped_checks_are_not_run_and_are_listed():
    report = check_env(CloseTwiceRaises(), skip=["close_idempotent", "gymnasium"])
    assert report.ok
    assert report.skipped == ("close_idempotent", "gymnasium")
    assert "close_idempotent" not in [r.name for r in report.results]
    assert "2 skipped" in str(report)


def test_unknown_skip_name_is_an_error_listing_the_checks():
    with pytest.raises(ValueError, match="step_before_reset"):
        check_env(CountEnv(), skip=["close_twice"])


def test_raise_if_failed_lists_every_failed_check():
    class TwoBugs(MalformedStepObservation):
        def close(self):
            if self._closed:
                raise RuntimeError("already closed")
            super().close()

    report = check_env(TwoBugs())
    with pytest.raises(EnvContractError) as e:
        report.raise_if_failed()
    assert isinstance(e.value, AssertionError)
    assert "  observation_format:" in str(e.value) and "  close_idempotent:" in str(e.value)


def test_report_string_marks_passes_and_failures():
    text = str(check_env(CloseTwiceRaises()))
    assert text.startswith("check_env(CloseTwiceRaises): 6 passed, 1 failed")
    assert "  PASS reset_seeding" in text
    assert "  FAIL close_idempotent: " in text


def test_report_lookup_of_an_unknown_check_names_the_known_ones():
    with pytest.raises(KeyError, match="async_twins"):
        check_env(CountEnv())["no_such_check"]


async def test_check_env_works_inside_a_running_event_loop():
    assert check_env(CountEnv()).ok

"""The web world model's trainer: its metrics on hand-made transitions, the split by task, a tiny run end to end
and the command line (``agentenv train wwm``, ``agentenv transitions``)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from agentenv.envs.web.delta import Delta, format_delta, parse_delta
from agentenv.envs.web.transitions import Transition, load_transitions, write_transitions
from agentenv.trainers.world_model import (
    METRICS,
    WorldModelConfig,
    copy_baseline_metrics,
    load_world_model_config,
    prediction_metrics,
    split_by_task,
    task_key,
    train_world_model,
)

URL = "URL: file:///boxes.html"


def page(checked: set[int], extra: str | None = None) -> str:
    lines = [URL, *(f'[{i}] checkbox "b{i}" {"checked" if i in checked else "unchecked"}' for i in (1, 2)),
             '[3] button "Submit"']
    return "\n".join([*lines, extra] if extra else lines)


def transition(seed: int, turn: int, before: str, after: str, action: str, reward: float = 0.0,
               done: bool = False, env: str = "agentenv/Boxes-v0") -> Transition:
    return Transition(env_id=env, task_id="boxes", seed=seed, trajectory_id=f"t{seed}", turn=turn, policy="hand",
                      task="Task: Select b1 and click Submit.", page=before, action=action, next_page=after,
                      reward=reward, done=done)


def episode(seed: int) -> list[Transition]:
    """Three kinds of step: a change, no change (a click on text) and the end of the task with its reward."""
    return [transition(seed, 0, page(set()), page({1}), "click(1)"),
            transition(seed, 1, page({1}), page({1}), "click(9)"),
            transition(seed, 2, page({1}), page({1}, "Done!"), "click(3)", reward=1.0, done=True)]


@pytest.fixture
def items() -> list[Transition]:
    return [t for seed in range(4) for t in episode(seed)]


def test_a_perfect_prediction_scores_one_everywhere(items):
    metrics = prediction_metrics(items, [t.target() for t in items])
    assert all(metrics[k] == 1.0 for k in METRICS), metrics
    assert metrics["n"] == len(items)


def test_the_copy_baseline_is_right_exactly_on_the_steps_that_change_nothing(items):
    metrics = copy_baseline_metrics(items)
    assert metrics["page_exact"] == pytest.approx(1 / 3)
    assert metrics["exact_delta"] == pytest.approx(1 / 3)  # the no-change step also has reward 0, not done
    assert metrics["valid_delta"] == 1.0
    assert metrics["changed_recall"] == 0.0
    assert metrics["reward_accuracy"] == pytest.approx(2 / 3) and metrics["done_accuracy"] == pytest.approx(2 / 3)
    # per episode the copy predicts 4 + 4 + 4 lines of the real 4 + 4 + 5, missing the changed [1] and "Done!"
    assert metrics["precision"] == pytest.approx(11 / 12) and metrics["recall"] == pytest.approx(11 / 13)


def test_a_malformed_or_misfitting_prediction_is_invalid_and_leaves_the_page_unchanged():
    change, same, _ = episode(0)
    bad = ["this is not a delta", "reward: 0\ndone: no\n- [42]"]  # unreadable; reads but names no such line
    for text in bad:
        assert prediction_metrics([change], [text])["valid_delta"] == 0.0
        assert prediction_metrics([change], [text])["page_exact"] == 0.0
        scored = prediction_metrics([same], [text])
        assert scored == {**copy_baseline_metrics([same]), "valid_delta": 0.0, "exact_delta": 0.0}


def test_reward_and_done_are_scored_on_their_own():
    *_, last = episode(0)
    right_page_wrong_reward = format_delta(Delta(parse_delta(last.target()).ops, reward=0.0, done=True))
    metrics = prediction_metrics([last], [right_page_wrong_reward])
    assert metrics["page_exact"] == 1.0 and metrics["exact_delta"] == 0.0
    assert metrics["reward_accuracy"] == 0.0 and metrics["done_accuracy"] == 1.0


def test_changed_recall_counts_the_new_lines_the_prediction_contains():
    t = transition(0, 0, page(set()), page({1, 2}), "click(1)")  # two lines change
    half = 'reward: 0\ndone: no\n~ [1]\n| [1] checkbox "b1" checked'
    metrics = prediction_metrics([t], [half])
    assert metrics["changed_recall"] == 0.5 and metrics["page_exact"] == 0.0 and metrics["valid_delta"] == 1.0


def test_the_split_keeps_every_task_on_one_side_and_is_seeded(items):
    more = items + [replace(t, env_id="agentenv/Other-v0") for t in items]  # same seeds, other tasks
    train, held = split_by_task(more, 0.25, seed=3)
    assert {task_key(t) for t in train}.isdisjoint({task_key(t) for t in held})
    assert len(train) + len(held) == len(more) and len({task_key(t) for t in held}) == 2
    assert split_by_task(more, 0.25, seed=3) == (train, held)
    assert {task_key(t) for t in split_by_task(more, 0.99, seed=0)[0]}  # never all held out
    with pytest.raises(ValueError, match="at least 2"):
        split_by_task(episode(0), 0.5)


def test_the_config_loads_overrides_and_rejects_bad_values():
    cfg = load_world_model_config(None, ["epochs=2", "lr=1e-4", "eval_transitions=null", "progress=off"],
                                  data=["a", "b"])
    assert (cfg.epochs, cfg.lr, cfg.eval_transitions, cfg.progress, cfg.data) == (2, 1e-4, None, "off", ["a", "b"])
    assert load_world_model_config(None, ["data=a,b"]).data == ["a", "b"]
    with pytest.raises(ValueError, match="unknown world model options: steps"):
        load_world_model_config(None, ["steps=3"], data=["a"])
    with pytest.raises(ValueError, match="holdout"):
        WorldModelConfig(data=["a"], holdout=1.0)
    with pytest.raises(ValueError, match="no training data"):
        WorldModelConfig()
    with pytest.raises(ValueError, match="option epochs"):
        load_world_model_config(None, ["epochs=1.5"], data=["a"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agentenv.policies.catalog import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def test_a_one_epoch_run_writes_its_metrics_predictions_plots_and_a_loadable_model(tmp_path, tiny, items):
    data = tmp_path / "data.jsonl"
    write_transitions(items, data)
    out = tmp_path / "run"
    cfg = WorldModelConfig(data=[str(data)], model=str(tiny), out=str(out), epochs=1, lr=1e-3, minibatch_rows=4,
                           holdout=0.25, eval_max_tokens=12, progress="off")
    result = train_world_model(cfg)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    assert records[1]["train_loss"] > 0 and records[1]["train_tokens_per_s"] > 0
    assert records[0]["baseline_page_exact"] == pytest.approx(1 / 3)
    assert result["data"]["train"] == 9 and result["data"]["held_out"] == 3 and result["data"]["held_out_tasks"] == 1
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert len(evals) == 3 and {"env_id", "action", "label", "predicted", "exact", "applies", "page_exact"} <= set(
        evals[0])
    assert (out / "plots.png").stat().st_size > 1000
    assert json.loads((out / "config.json").read_text())["epochs"] == 1
    from agentenv.policies.embedded import TransformersPolicy

    TransformersPolicy(str(out / "model"))
    with pytest.raises(FileExistsError, match="already holds"):
        train_world_model(cfg)




def test_train_wwm_on_the_command_line(tmp_path, tiny, items, cli):
    data = tmp_path / "data.jsonl"
    write_transitions(items, data)
    code, out, err = cli("train", "wwm", "--data", str(data), "--model", str(tiny), "-o",
                         str(tmp_path / "run"), "epochs=1", "eval_max_tokens=8", "progress=off",
                         "eval_before=false")
    assert code == 0, err
    assert "copy baseline" in out and "page exact" in out and (tmp_path / "run" / "model").is_dir()
    assert re.search(r"exact delta\s+│\s+-\s+│\s+\d\.\d{3}", out)  # no "before" column: not evaluated
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1]
    code, _, err = cli("train", "grpo", "--data", str(data))
    assert code == 2 and "--data" in err
    code, _, err = cli("train", "wwm", "--data", str(data), "bogus=1")
    assert code == 2 and "unknown world model options" in err


@pytest.mark.integration
def test_transitions_from_a_real_miniwob_store(tmp_path, cli):
    store = tmp_path / "store"
    code, _, err = cli("collect", "agentenv/MiniWoB-ClickCheckboxes-v0", "-o", str(store), "-p",
                       "expert", "-n", "2", "-k", "2", "--progress", "off")
    assert code == 0, err
    code, out, err = cli("transitions", str(store), "--out", str(tmp_path / "t.jsonl"))
    assert code == 0, err
    loaded = load_transitions([tmp_path / "t.jsonl"])
    assert loaded and all(t.env_id == "agentenv/MiniWoB-ClickCheckboxes-v0" for t in loaded)
    assert loaded == load_transitions([store])
    assert "policy expert" in out and f"{len(loaded)} transitions" in out

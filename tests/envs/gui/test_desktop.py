"""The desktop GUI envs on a real Xvfb, real xdotool and real Tk programs.

Without Xvfb or xdotool these tests skip with the apt command, and fail with it under
``AGENTENV_REQUIRE_GUI=1`` (scripts/test.sh sets it). One env per task is shared by the module: its
display is started once and reused by every reset, as in training.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentenv
from agentenv.census import Census, assert_no_leaks
from agentenv.envs.gui import desktop_apps
from agentenv.envs.gui.actions import GuiAction
from agentenv.envs.gui.desktop import TASKS, DesktopEnv, env_id, register_desktop
from agentenv.envs.gui.display import APT_HINT, DisplayUnavailable, VirtualDisplay, missing_tools, xdotool_args
from agentenv.messages import content_text, image_bytes, observation_problems

pytestmark = pytest.mark.integration
SCREEN = (640, 480)
MARKERS = ("Xvfb", "xdotool", "desktop_apps.py")


@pytest.fixture(scope="module", autouse=True)
def gui_tools() -> None:
    missing = missing_tools()
    if missing:
        why = f"{' and '.join(missing)} not found; install them with `{APT_HINT}`"
        if os.environ.get("AGENTENV_REQUIRE_GUI") == "1":
            pytest.fail(f"AGENTENV_REQUIRE_GUI=1 but {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def envs() -> Iterator[dict[str, DesktopEnv]]:
    made: dict[str, DesktopEnv] = {}

    class Lazy(dict[str, DesktopEnv]):
        def __missing__(self, task: str) -> DesktopEnv:
            made[task] = self[task] = DesktopEnv(task)
            return made[task]

    yield Lazy()
    for env in made.values():
        env.close()


def gui_processes() -> set[int]:
    """Live descendants of this test process that are Xvfb, xdotool or a task program."""
    parents: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] not in ("Z", "X"):
            parents[int(name)] = (int(fields[1]), cmdline)
    found: set[int] = set()
    frontier = [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in parents.items() if ppid == parent]
        found.update(pid for pid in children if any(m in parents[pid][1] for m in MARKERS))
        frontier += children
    return found


def screenshot_of(obs: dict) -> bytes:
    return image_bytes(obs["messages"][-1]["content"][-1])


def pixels(png: bytes) -> tuple[tuple[int, int], bytes]:
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.size, image.convert("RGB").tobytes()


def play_expert(env: DesktopEnv, seed: int) -> tuple[float, bool, dict]:
    env.reset(seed=seed)
    for _ in range(env.max_turns or 15):
        action = env.expert_action()
        assert action is not None
        _, reward, terminated, truncated, info = env.step(action)
        assert observation_problems(_) == []
        if terminated or truncated:
            return reward, terminated, info
    raise AssertionError("the episode did not end")


def test_the_suite_names_every_task_of_the_program():
    assert set(TASKS) == set(desktop_apps.TASKS) and len(TASKS) >= 6


def test_every_task_registers_under_the_gui_family():
    register_desktop()
    infos = {info.id: info for info in agentenv.registered_envs()}
    for task in TASKS:
        info = infos[env_id(task)]
        assert info.family == "gui" and info.entry_point == "agentenv.envs.gui.desktop:DesktopEnv"
    assert env_id("click-button") == "agentenv/Desktop-ClickButton-v0"


@pytest.mark.parametrize("task", TASKS)
def test_expert_wins_every_task(envs, task):
    for seed in (0, 1):
        reward, terminated, info = play_expert(envs[task], seed)
        assert (reward, terminated, info["won"]) == (1.0, True, True), (task, seed, info)


def test_reset_shows_the_action_space_the_instruction_and_a_screenshot(envs):
    obs, info = envs["click-button"].reset(seed=3)
    assert observation_problems(obs) == []
    system, user = obs["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    for call in ("click(x, y)", "double_click(x, y)", "right_click(x, y)", 'type("text")', 'key("ctrl+a")',
                 "scroll(x, y, dx, dy)", "drag(x1, y1, x2, y2)", "done()", "pixels"):
        assert call in system["content"]
    text = content_text(user["content"])
    assert f"Instruction: {info['instruction']}" in text and "Screen: 640x480" in text
    size, _ = pixels(screenshot_of(obs))
    assert size == SCREEN


def test_a_click_on_the_right_button_wins_and_a_click_elsewhere_does_not(envs):
    env = envs["click-button"]
    env.reset(seed=5)
    target = env.expert_action()
    assert target is not None and target.startswith("click(")
    obs, reward, terminated, _, info = env.step("I click the corner first.\nclick(5, 5)")
    assert (reward, terminated, info["won"]) == (0.0, False, False)
    assert observation_problems(obs) == []
    x, y = (int(v) for v in target[len("click("):-1].split(","))
    _, reward, terminated, _, info = env.step(f"click({x}, {y})")
    assert (reward, terminated, info["won"]) == (1.0, True, True)

    env.reset(seed=5)
    _, reward, terminated, _, info = env.step(f"click({x}, {y + 40})")  # below the button: nothing there
    assert (reward, info["won"]) == (0.0, False)
    _, reward, terminated, _, info = env.step("done()")
    assert (reward, terminated, info["won"]) == (0.0, True, False)


def test_a_wrong_choice_ends_the_episode_with_no_reward(envs):
    env = envs["menu-command"]
    _, info = env.reset(seed=2)
    menu, item = info["instruction"][len("Choose "):-len(" from the menus.")].split(" > ")
    env.step(env.expert_action() or "")  # opens the right menu
    x, y = (int(v) for v in (env.expert_action() or "")[len("click("):-1].split(","))
    neighbour = y + 20 if desktop_apps.MENUS[menu].index(item) == 0 else y - 20
    _, reward, terminated, _, info = env.step(f"click({x}, {neighbour})")
    assert (reward, terminated, info["won"]) == (0.0, True, False)


def test_seeds_reproduce_the_instruction_and_the_pixels_and_differ_across_seeds(envs):
    env = envs["click-button"]
    first, info1 = env.reset(seed=11)
    again, info2 = env.reset(seed=11)
    other, _ = env.reset(seed=12)
    assert info1["instruction"] == info2["instruction"]
    assert pixels(screenshot_of(first)) == pixels(screenshot_of(again))
    assert pixels(screenshot_of(first)) != pixels(screenshot_of(other))


@pytest.mark.parametrize("action", ["click(640, 10)", "drag(1, 1, 5, 900)", 'key("hyper+q")', 'key("foo")',
                                    "open the door", "click(1)", "", 'type("a\\x00b")', "scroll(1, 2, 3)"])
def test_a_bad_action_is_answered_with_an_error_observation(envs, action):
    env = envs["type-text"]
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(action)
    assert observation_problems(obs) == []
    assert info["action_valid"] is False and not terminated and reward == 0.0
    assert content_text(obs["messages"][0]["content"]).startswith("Invalid action:")


def test_a_scroll_over_the_list_scrolls_it(envs):
    env = envs["select-list"]
    obs, _ = env.reset(seed=0)
    action = env.expert_action() or ""
    assert action.startswith("scroll(")  # seed 0's item is below the visible rows
    after, *_ = env.step(action)
    assert pixels(screenshot_of(after)) != pixels(screenshot_of(obs))


def test_xdotool_commands_for_each_action():
    assert xdotool_args(GuiAction("click", (3, 4))) == ["mousemove", "3", "4", "click", "1"]
    assert xdotool_args(GuiAction("double_click", (3, 4)))[-3:] == ["--repeat", "2", "1"]
    assert xdotool_args(GuiAction("right_click", (3, 4)))[-1] == "3"
    assert xdotool_args(GuiAction("type", ("-x y",))) == ["type", "--delay", "0", "--", "-x y"]
    assert xdotool_args(GuiAction("key", ("ctrl+enter",))) == ["key", "--", "ctrl+Return"]
    scroll = xdotool_args(GuiAction("scroll", (10, 20, -30, 260)))
    assert scroll == ["mousemove", "10", "20", "click", "--repeat", "3", "--delay", "1", "5",
                      "click", "--repeat", "1", "--delay", "1", "6"]
    assert "20" in xdotool_args(GuiAction("scroll", (0, 0, 0, -99999)))
    drag = xdotool_args(GuiAction("drag", (0, 0, 100, 50)))
    assert drag[:4] == ["mousemove", "0", "0", "mousedown"] and drag[-5:] == ["mousemove", "100", "50",
                                                                                 "mouseup", "1"]
    assert xdotool_args(GuiAction("done", ())) == []


def test_close_leaves_no_process_behind():
    """Nor an fd, nor the display's X socket (the census's system paths)."""
    census = Census.take(containers=False)
    before = gui_processes()
    env = DesktopEnv("calculator")
    env.reset(seed=0)
    env.step(env.expert_action() or "")
    assert env.display is not None and env.app is not None
    group, app_pid = env.display.pgid, env.app.proc.pid
    started = gui_processes() - before
    assert group in started and app_pid in started
    env.close()
    env.close()
    assert gui_processes() <= before
    assert not Path(f"/proc/{app_pid}").exists() and not Path(f"/proc/{group}").exists()
    assert_no_leaks(census)


def test_the_display_listens_on_its_unix_socket_only():
    with VirtualDisplay((320, 200)) as display:
        assert display.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"
        argv = Path(f"/proc/{display.pgid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"-nolisten"):argv.index(b"-nolisten") + 2] == [b"-nolisten", b"tcp"]
        assert Path(f"/tmp/.X11-unix/X{display.number}").is_socket()
        sleeper = display.popen(["sleep", "30"])
        deadline = time.monotonic() + 5
        while not (environ := Path(f"/proc/{sleeper.pid}/environ").read_bytes().split(b"\0"))[0] \
                and time.monotonic() < deadline:  # empty until the child has exec'd
            time.sleep(0.01)
        assert b"DISPLAY=" + display.name.encode() in environ and not any(e.startswith(b"HOME=") for e in environ)
        assert sleeper.pid in display.pids()
    assert sleeper.returncode is not None and not Path(f"/proc/{sleeper.pid}").exists()


def test_concurrent_envs_each_see_their_own_display(envs):
    first, second = envs["click-button"], envs["calculator"]
    obs_first, _ = first.reset(seed=1)
    obs_second, _ = second.reset(seed=1)
    assert first.display is not None and second.display is not None
    assert first.display.number != second.display.number
    assert pixels(first.display.screenshot()) == pixels(screenshot_of(obs_first))
    assert pixels(second.display.screenshot()) == pixels(screenshot_of(obs_second))
    assert pixels(screenshot_of(obs_first)) != pixels(screenshot_of(obs_second))


def test_missing_tools_name_the_apt_package(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(DisplayUnavailable, match="apt-get install -y xvfb xdotool"):
        VirtualDisplay()


def test_check_env_passes_on_a_desktop_id():
    register_desktop()
    agentenv.check_env(env_id("click-button")).raise_if_failed()

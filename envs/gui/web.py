"""The web tasks at the pixel level: MiniWoB++ and the store seen as screenshots, driven by mouse and keys.

Same pages, same seeds and same rewards as the text envs (`agentenv.envs.web`); only the interface
changes. The observation is the task line and a PNG of the browser's viewport as an image part (the
OpenAI image format), and the actions are those of `agentenv.envs.gui.actions`, in viewport pixels,
carried out by Playwright's mouse and keyboard, so a click lands wherever the page has put things, as
it would for a person. `done()` ends the episode, scored by the page as it stands.

The expert translates the text env's expert (element ids) into pixels from the elements' boxes on
the page, one action at a time, so pixel agents get demonstrations and DAgger labels on the same tasks.
"""

from __future__ import annotations

from typing import Any

from agentenv.env import StepResult
from agentenv.envs.gui.actions import parse_gui_action, parsed_gui_action, playwright_keys, screen_prompt
from agentenv.envs.web.browser_env import BrowserEnv, PageView
from agentenv.envs.web.miniwob import MiniWoBEnv
from agentenv.envs.web.page import WebActionError, action_failure, evaluate_settled, observe, parse_web_action
from agentenv.envs.web.webshop import WebShopEnv
from agentenv.messages import Content, image_part, text_part
from agentenv.parsing import ParsedAction

BOX_JS = """(id) => {
  const el = document.querySelector(`[data-agentenv-id="${id}"]`);
  if (!el) return null;
  const r = el.getBoundingClientRect();
  const active = document.activeElement === el;
  const value = 'value' in el ? String(el.value) : null;
  const all = value !== null && el.selectionStart === 0 && el.selectionEnd === value.length;
  return {x: r.x, y: r.y, w: r.width, h: r.height, active, value, all, vw: innerWidth, vh: innerHeight};
}"""
KEY_NAMES = {"arrowup": "up", "arrowdown": "down", "arrowleft": "left", "arrowright": "right",
             "control": "ctrl"}


class PixelControl(BrowserEnv):
    """Turns a browser env into its pixel twin: put it first in the bases (`class X(PixelControl, Env)`)."""

    family = "gui"

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.pop("screenshot", None)
        super().__init__(*args, screenshot=True, **kwargs)
        self.system_prompt = screen_prompt(self.viewport, "a web browser")
        self.done_called = False

    def _reset(self, options: dict[str, Any] | None) -> Any:
        self.done_called = False
        return super()._reset(options)

    async def _view(self) -> PageView:
        assert self.session is not None
        png = await self.session.guarded(self.session.screenshot())
        self.page_text = ""  # the text view is built only when the expert asks for it
        return PageView("", png)

    def _content(self, view: PageView, error: str | None) -> Content:
        assert view.png is not None
        feedback = f"Error: {error}\n\n" if error else ""
        width, height = self.viewport
        return [text_part(f"{feedback}{self.task_line()}\nScreen: {width}x{height}"), image_part(view.png)]

    def parse_action(self, text: str) -> ParsedAction:
        return parsed_gui_action(text, self.viewport)

    async def _perform(self, command: str) -> None:
        assert self.session is not None
        action, page = parse_gui_action(command, self.viewport), self.session.page
        name, args = action.name, action.args
        try:
            if name == "click":
                await page.mouse.click(*args)
            elif name == "double_click":
                await page.mouse.dblclick(*args)
            elif name == "right_click":
                await page.mouse.click(*args, button="right")
            elif name == "type":
                await page.keyboard.type(args[0])
            elif name == "key":
                await page.keyboard.press(playwright_keys(args[0]))
            elif name == "scroll":
                await page.mouse.move(args[0], args[1])
                await page.mouse.wheel(args[2], args[3])
            elif name == "drag":
                await page.mouse.move(args[0], args[1])
                await page.mouse.down()
                await page.mouse.move(args[2], args[3], steps=8)
                await page.mouse.up()
            elif name == "done":
                self.done_called = True
        except Exception as exc:
            failure = action_failure(action, exc)
            if failure is None:
                raise
            raise failure from exc
        stalled = await self.session.settle()  # a click may have started a navigation: show where it leads
        if stalled:
            raise WebActionError(stalled)

    def _step(self, action: ParsedAction) -> StepResult:
        result = super()._step(action)
        if self.done_called and not result.terminated:
            result.terminated = True
            result.info["won"] = False
        return result

    async def _expert(self) -> str | None:
        """The text expert's next action, from a fresh text view, as one pixel action."""
        assert self.session is not None
        page = self.session.page
        text = await self.session.guarded(observe(page, root=self.text_root, skip=self.text_skip))
        self.page_text = f"URL: {self.public_url(page.url)}\n{text}"
        suggestion = await super()._expert()
        if suggestion is None:
            return None
        try:
            step = parse_web_action(suggestion)
        except WebActionError:
            return None
        if step.name == "press":
            key = str(step.args[0])
            return f"key({'+'.join(KEY_NAMES.get(k.lower(), k.lower()) for k in key.split('+'))!r})"
        if step.name == "scroll":
            width, height = self.viewport
            return f"scroll({width // 2}, {height // 2}, {step.args[0]}, {step.args[1]})"
        if step.name not in ("click", "fill"):
            return None  # select_option, goto and go_back have no single pixel action
        box = await self.session.guarded(evaluate_settled(page, BOX_JS, step.args[0]))
        if box is None or box["w"] <= 0 or box["h"] <= 0:
            return None
        x, y = int(box["x"] + box["w"] / 2), int(box["y"] + box["h"] / 2)
        width, height = self.viewport
        if not (0 <= y < min(height, box["vh"])):  # off screen: scroll it into view first
            dy = y - height // 2
            return f"scroll({width // 2}, {height // 2}, 0, {dy})"
        if step.name == "click":
            return f"click({x}, {y})"
        target = str(step.args[1])
        if not box["active"]:
            return f"click({x}, {y})"
        if box["value"] and not box["all"]:
            return 'key("ctrl+a")'
        return f"type({target!r})" if target else 'key("delete")'


class GuiMiniWoBEnv(PixelControl, MiniWoBEnv):
    """A MiniWoB++ task as a screenshot with mouse and keyboard (options as for `MiniWoBEnv`)."""


class GuiWebShopEnv(PixelControl, WebShopEnv):
    """The store as a screenshot with mouse and keyboard (options as for `WebShopEnv`)."""

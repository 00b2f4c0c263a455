"""What a web agent sees and does: the page as text with stable element ids, and the actions on them.

The observation is a simplified DOM in the spirit of BrowserGym's accessibility tree: visible text, and
one line per interactive element with an id (`[12] button "Buy Now"`). Ids are written into the page as
`data-agentenv-id` the first time an element is seen, so an element keeps its id for as long as it lives,
across observations. Hidden elements (display:none, zero size, aria-hidden) are left out, so text a page
hides from people cannot instruct the agent either (reliability A25); the text is capped (A26).

Actions are calls with literal arguments, parsed with `ast.literal_eval` (never evaluated): `click(id)`,
`fill(id, text)`, `select_option(id, value)`, `press(key)`, `scroll(dx, dy)`, `goto(url)`, `go_back()`,
`answer(text)`. A wrong id or argument is an error message for the agent, not an exception.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import Any

MAX_OBSERVATION_CHARS = 20_000
ACTIONS = {
    "click": (int,), "fill": (int, str), "select_option": (int, str), "press": (str,),
    "scroll": (int, int), "goto": (str,), "go_back": (), "answer": (str,),
}
CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)

SERIALIZE_JS = r"""
([maxChars, rootSelector, skipSelector]) => {
  let next = window.__agentenvNextId || 1;
  const out = [];
  let size = 0;
  const push = (line) => { if (size < maxChars) { out.push(line); size += line.length + 1; } };
  const roleOf = (el) => {
    const tag = el.tagName, type = (el.getAttribute('type') || '').toLowerCase();
    const role = el.getAttribute('role');
    if (role) return role;
    if (tag === 'A' && el.hasAttribute('href')) return 'link';
    if (tag === 'BUTTON' || (tag === 'INPUT' && ['button', 'submit', 'reset', 'image'].includes(type))) return 'button';
    if (tag === 'INPUT' && type === 'checkbox') return 'checkbox';
    if (tag === 'INPUT' && type === 'radio') return 'radio';
    if (tag === 'INPUT' || tag === 'TEXTAREA') return 'textbox';
    if (tag === 'SELECT') return 'combobox';
    if (el.hasAttribute('onclick') || el.hasAttribute('tabindex')) return 'clickable';
    // Script-bound handlers leave no attribute; a pointer cursor that the parent does not share marks them.
    if (getComputedStyle(el).cursor === 'pointer' && el.parentElement &&
        getComputedStyle(el.parentElement).cursor !== 'pointer') return 'clickable';
    return null;
  };
  const visible = (el) => {
    if (el.getAttribute('aria-hidden') === 'true') return false;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || style.opacity === '0') return false;
    const rect = el.getBoundingClientRect();
    return rect.width > 0 && rect.height > 0 || style.display === 'contents';
  };
  const LEAF_ROLES = new Set(['link', 'button', 'textbox', 'checkbox', 'radio', 'combobox', 'option', 'menuitem',
                              'tab', 'switch', 'slider', 'spinbutton', 'searchbox']);
  const clean = (text) => (text || '').replace(/\s+/g, ' ').trim().slice(0, 120);
  const labelOf = (el) => clean(el.getAttribute('aria-label') ||
    (el.labels && el.labels.length ? el.labels[0].innerText : '') || el.innerText || el.value ||
    el.getAttribute('placeholder') || el.getAttribute('title') || el.getAttribute('alt') || el.getAttribute('name'));
  const walk = (node, depth) => {
    for (const child of node.childNodes) {
      if (size >= maxChars) return;
      const indent = '  '.repeat(depth);
      if (child.nodeType === Node.TEXT_NODE) {
        const text = clean(child.textContent);
        if (text) push(indent + text);
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE) continue;
      if (['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD'].includes(child.tagName)) continue;
      if (skipSelector && child.matches(skipSelector)) continue;
      if (!visible(child)) continue;
      const role = roleOf(child);
      if (role === null) { walk(child, depth); continue; }
      let id = child.getAttribute('data-agentenv-id');
      if (!id) { id = String(next++); child.setAttribute('data-agentenv-id', id); }
      let line = `${indent}[${id}] ${role} ${JSON.stringify(labelOf(child))}`;
      if (role === 'textbox') {
        line += `${child.tagName === 'TEXTAREA' ? ' multiline' : ''} value=${JSON.stringify(child.value || '')}`;
      }
      if (role === 'checkbox' || role === 'radio') line += child.checked ? ' checked' : ' unchecked';
      if (role === 'combobox') {
        const options = Array.from(child.options || [])
          .map(o => (o.selected ? '*' : '') + JSON.stringify(clean(o.text)));
        line += ` options=[${options.join(', ')}]`;
      }
      push(line);
      // Controls are leaves; containers (tablist, tree, list, dialog, menu, clickable divs...) show their insides.
      if (!LEAF_ROLES.has(role) && !(role === 'clickable' && child.children.length === 0)) walk(child, depth + 1);
    }
  };
  const root = (rootSelector && document.querySelector(rootSelector)) || document.body;
  if (root) walk(root, 0);
  window.__agentenvNextId = next;
  const text = out.join('\n');
  return size >= maxChars ? text + '\n[... page truncated ...]' : text;
}
"""


@dataclass(frozen=True)
class WebAction:
    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"


class WebActionError(ValueError):
    """An action that cannot be carried out; the message goes back to the agent."""


def parse_web_action(text: str) -> WebAction:
    """The last line that looks like an action call, with its literal arguments checked."""
    candidates = [line.strip().strip("`") for line in text.strip().splitlines() if CALL.match(line.strip().strip("`"))]
    if not candidates:
        raise WebActionError(f"no action found; write one of: {', '.join(f'{n}(...)' for n in ACTIONS)}")
    match = CALL.match(candidates[-1])
    assert match is not None
    name, raw = match.group(1), match.group(2).strip()
    if name not in ACTIONS:
        raise WebActionError(f"unknown action {name!r}; use one of {', '.join(ACTIONS)}")
    try:
        value: tuple[Any, ...] = ast.literal_eval(f"({raw},)") if raw else ()
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise WebActionError(f"cannot read the arguments of {name}: {exc}") from exc
    expected = ACTIONS[name]
    if len(value) != len(expected):
        raise WebActionError(f"{name} takes {len(expected)} argument(s), got {len(value)}")
    for got, want in zip(value, expected, strict=True):
        if not isinstance(got, want) or isinstance(got, bool):
            raise WebActionError(f"{name}: expected {want.__name__}, got {got!r:.40}")
    if name == "press" and (not value[0] or len(value[0]) > 40):
        raise WebActionError("press takes a key name such as 'Enter' or 'Control+A'")
    return WebAction(name, tuple(value))


async def evaluate_settled(page: Any, script: str, arg: Any = None, tries: int = 4,
                           attempt_s: float = 4.0) -> Any:
    """`page.evaluate`, robust to navigations: when one destroys the document under it (a click that
    submits a form, a page that redirects itself) the next document is asked again, and when one never
    commits (a link to a server that never answers), it is stopped and the page shown is asked."""
    for attempt in range(tries):
        last = attempt == tries - 1
        try:
            return await asyncio.wait_for(page.evaluate(script, arg), None if last else attempt_s)
        except TimeoutError:
            if last:
                raise
            await stop_loading(page)
        except Exception as exc:
            navigated = "Execution context was destroyed" in str(exc) or "navigat" in str(exc).lower()
            if not navigated or last:
                raise
            with contextlib.suppress(Exception):
                await page.wait_for_load_state("domcontentloaded", timeout=2000)
    raise AssertionError("unreachable")


async def stop_loading(page: Any) -> None:
    """Abandon the page's pending navigation (as the browser's stop button does), keeping what is shown."""
    with contextlib.suppress(Exception):
        cdp = await page.context.new_cdp_session(page)
        try:
            await cdp.send("Page.stopLoading")
        finally:
            await cdp.detach()


async def observe(page: Any, max_chars: int = MAX_OBSERVATION_CHARS, root: str | None = None,
                  skip: str | None = None) -> str:
    """The page (or the element matching the CSS selector `root`) as text with element ids, leaving out
    the elements that match the CSS selector `skip` (a task's own chrome, such as its score display)."""
    return str(await evaluate_settled(page, SERIALIZE_JS, [max_chars, root, skip]))


TARGET_JS = r"""
(id) => {
  const el = document.querySelector(`[data-agentenv-id="${id}"]`);
  if (!el) return {error: `no element with id ${id} on this page`};
  let r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return {error: `element ${id} is not visible`};
  if (r.bottom <= 0 || r.right <= 0 || r.top >= innerHeight || r.left >= innerWidth ||
      r.top + r.height / 2 < 0 || r.top + r.height / 2 >= innerHeight) {
    el.scrollIntoView({block: 'center', inline: 'center'});
    r = el.getBoundingClientRect();
  }
  const x = Math.min(Math.max(r.left + r.width / 2, 0), innerWidth - 1);
  const y = Math.min(Math.max(r.top + r.height / 2, 0), innerHeight - 1);
  const hit = document.elementFromPoint(x, y);
  if (hit && hit !== el && !el.contains(hit) && !hit.contains(el)) {
    const what = hit.getAttribute('data-agentenv-id') ? `element ${hit.getAttribute('data-agentenv-id')}`
      : `a <${hit.tagName.toLowerCase()}>`;
    return {error: `element ${id} is covered by ${what} at its center`};
  }
  return {x, y, disabled: !!el.disabled};
}
"""


def action_failure(action: object, exc: Exception) -> WebActionError | None:
    """The agent's error for a browser call that failed, or None when the browser itself went away (the
    session's `guarded` turns that into `BrowserCrashed`)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "closed" in message or "crashed" in message.lower():
        return None
    return WebActionError(f"{action} failed: {message[:300]}")


async def perform(page: Any, action: WebAction, *, allowed: Any, timeout_ms: int = 5000) -> None:
    """Carry out an action on the page; `WebActionError` for what the agent got wrong.

    A click is a real mouse click at the element's center (scrolled into view first), as a person's
    would be, refused with the reason when something else covers that point; it does not wait for
    animations to settle, which is most of what Playwright's own click costs.
    """
    name, args = action.name, action.args

    async def target(element_id: int) -> dict[str, Any]:
        found = await evaluate_settled(page, TARGET_JS, element_id)
        if "error" in found:
            raise WebActionError(found["error"])
        return dict(found)

    async def element(element_id: int) -> Any:
        await target(element_id)
        return page.locator(f'[data-agentenv-id="{element_id}"]').first

    try:
        if name == "click":
            spot = await target(args[0])
            if spot["disabled"]:
                raise WebActionError(f"element {args[0]} is disabled")
            await page.mouse.click(spot["x"], spot["y"])
        elif name == "fill":
            await (await element(args[0])).fill(args[1], timeout=timeout_ms)
        elif name == "select_option":
            menu = await element(args[0])
            try:
                await menu.select_option(value=args[1], timeout=timeout_ms)
            except Exception:
                await menu.select_option(label=args[1], timeout=timeout_ms)
        elif name == "press":
            await page.keyboard.press(args[0])
        elif name == "scroll":
            await page.mouse.wheel(args[0], args[1])
        elif name == "goto":
            if not allowed.allows(args[0]):
                raise WebActionError(f"{args[0]} is not allowed in this task")
            try:
                await page.goto(args[0], timeout=timeout_ms)
            except Exception:
                await stop_loading(page)  # a load that never ends would hold every later call on the page
                raise
        elif name == "go_back":
            await page.go_back(timeout=timeout_ms)
    except WebActionError:
        raise
    except Exception as exc:
        failure = action_failure(action, exc)
        if failure is None:
            raise
        raise failure from exc
    with contextlib.suppress(Exception):  # a page that never finishes loading is still observable
        await page.wait_for_load_state("domcontentloaded", timeout=2000)

"""The desktop task suite: one small Tk program per task, seeded, that reports its own state.

    python -m agentenv.envs.gui.desktop_apps TASK SEED|- [WIDTH HEIGHT]

The window fills the display at +0+0 without decorations (no window manager runs). The program speaks
JSON lines: once drawn it prints its state with ``"seq": 0``; each ``state N`` line on stdin is answered
with the state as ``"seq": N`` after every pending X event has been handled (``update`` ends with an
XSync round trip), so the answer reflects every input sent before the query; EOF on stdin quits. The
state holds the instruction, whether the episode ``ended`` (a submit, or a wrong choice) and was ``won``,
whether the current state ``solved`` the task (what ``done()`` scores), and the ``expert``'s next action,
computed from the widgets' own screen geometry. Stdlib only: the env starts it by file path, which
skips importing agentenv.
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
import tkinter as tk
from collections.abc import Callable

WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "candle", "forest", "rocket",
         "silver", "garden", "window", "planet", "orange", "pencil", "marble", "violet", "harbor", "falcon")
MENUS = {"File": ("New", "Open", "Save", "Print", "Quit"), "Edit": ("Undo", "Cut", "Copy", "Paste", "Find"),
         "View": ("Zoom In", "Zoom Out", "Full Screen", "Sidebar"), "Tools": ("Spelling", "Macros", "Options")}
COMBOS = ("ctrl+s", "ctrl+o", "ctrl+p", "ctrl+z", "ctrl+shift+z", "alt+f", "escape", "f5", "ctrl+enter")
FONT = ("DejaVu Sans", 11)


def center(widget: tk.Misc) -> tuple[int, int]:
    return widget.winfo_rootx() + widget.winfo_width() // 2, widget.winfo_rooty() + widget.winfo_height() // 2


class Task:
    """A task: builds its widgets from ``rng``; subclasses set ``instruction`` and define ``solved``/``expert``."""

    instruction = ""

    def __init__(self, root: tk.Tk, rng: random.Random, width: int, height: int):
        self.root, self.rng, self.width, self.height = root, rng, width, height
        self.ended = self.won = False
        self.build()
        tk.Label(root, text=self.instruction, font=FONT, bg="#fff8c0", anchor="w", padx=8,
                 wraplength=width - 20, justify="left").place(x=0, y=0, width=width, height=44)

    def build(self) -> None:
        raise NotImplementedError

    def solved(self) -> bool:
        return self.won

    def expert(self) -> str:
        raise NotImplementedError

    def finish(self, won: bool) -> None:
        if not self.ended:
            self.ended, self.won = True, won

    def spots(self, n: int, cols: int = 4, rows: int = 4) -> list[tuple[int, int]]:
        """``n`` distinct cell centres of a grid below the instruction, each jittered a little."""
        cw, ch = self.width // cols, (self.height - 60) // rows
        cells = self.rng.sample([(c, r) for c in range(cols) for r in range(rows)], n)
        return [(c * cw + cw // 2 + self.rng.randint(-cw // 6, cw // 6),
                 60 + r * ch + ch // 2 + self.rng.randint(-ch // 6, ch // 6)) for c, r in cells]

    def state(self) -> dict[str, object]:
        return {"instruction": self.instruction, "ended": self.ended, "won": self.won,
                "solved": bool(self.solved()), "expert": "done()" if self.ended else self.expert()}


def click(widget: tk.Misc) -> str:
    return "click({}, {})".format(*center(widget))


class ClickButton(Task):
    def build(self) -> None:
        labels = self.rng.sample(WORDS, 5)
        self.target = self.rng.choice(labels)
        self.instruction = f"Click the button labelled '{self.target}'."
        self.buttons: dict[str, tk.Button] = {}
        for label, (x, y) in zip(labels, self.spots(len(labels)), strict=True):
            button = tk.Button(self.root, text=label, font=FONT, command=functools.partial(self.choose, label))
            button.place(x=x, y=y, anchor="center")
            self.buttons[label] = button

    def choose(self, label: str) -> None:
        self.finish(label == self.target)

    def expert(self) -> str:
        return click(self.buttons[self.target])


class TypeText(Task):
    def build(self) -> None:
        self.target = self.rng.choice(WORDS)
        self.instruction = f"Type '{self.target}' in the text box and press Enter."
        x, y = self.rng.randint(80, self.width - 220), self.rng.randint(90, self.height - 40)
        tk.Label(self.root, text="Text:", font=FONT).place(x=x - 6, y=y, anchor="e")
        self.entry = tk.Entry(self.root, font=FONT, width=18, insertofftime=0)
        self.entry.place(x=x, y=y, anchor="w")
        self.entry.bind("<Return>", lambda _e: self.finish(self.solved()))

    def solved(self) -> bool:
        return self.won or self.entry.get() == self.target

    def expert(self) -> str:
        text = self.entry.get()
        if self.root.focus_get() is not self.entry:
            return click(self.entry)
        if text == self.target:
            return 'key("enter")'
        if self.target.startswith(text):
            return f"type({self.target[len(text):]!r})"
        return 'key("backspace")'


class CheckBoxes(Task):
    def build(self) -> None:
        labels = self.rng.sample(WORDS, 5)
        self.wanted = set(self.rng.sample(labels, self.rng.randint(1, 3)))
        names = ", ".join(repr(w) for w in labels if w in self.wanted)
        self.instruction = f"Tick exactly these boxes: {names}. Then click Submit."
        self.vars: dict[str, tk.BooleanVar] = {}
        self.boxes: dict[str, tk.Checkbutton] = {}
        spots = self.spots(len(labels) + 1)
        for label, (x, y) in zip(labels, spots, strict=False):
            var = tk.BooleanVar(self.root, value=False)
            box = tk.Checkbutton(self.root, text=label, font=FONT, variable=var)
            box.place(x=x, y=y, anchor="center")
            self.vars[label], self.boxes[label] = var, box
        self.submit = tk.Button(self.root, text="Submit", font=FONT, command=lambda: self.finish(self.solved()))
        self.submit.place(x=spots[-1][0], y=spots[-1][1], anchor="center")

    def solved(self) -> bool:
        return self.won or {w for w, v in self.vars.items() if v.get()} == self.wanted

    def expert(self) -> str:
        for label, var in self.vars.items():
            if var.get() != (label in self.wanted):
                return click(self.boxes[label])
        return click(self.submit)


class SelectList(Task):
    def build(self) -> None:
        self.items = self.rng.sample(WORDS, 16)
        self.target = self.rng.choice(self.items)
        self.instruction = f"Double-click '{self.target}' in the list (scroll the list if you need to)."
        x, y = self.spots(1, cols=3, rows=2)[0]
        self.box = tk.Listbox(self.root, font=FONT, height=6, width=14, exportselection=False, activestyle="none")
        for item in self.items:
            self.box.insert("end", item)
        self.box.place(x=x, y=max(y, 170), anchor="center")
        self.box.bind("<Double-Button-1>", self.on_double)

    def on_double(self, event: tk.Event) -> None:
        self.finish(self.items[self.box.nearest(event.y)] == self.target)

    def solved(self) -> bool:
        chosen = self.box.curselection()
        return self.won or (bool(chosen) and self.items[chosen[0]] == self.target)

    def expert(self) -> str:
        index = self.items.index(self.target)
        cx, cy = center(self.box)
        bbox = self.box.bbox(index)
        if bbox is None or bbox[1] < 0 or bbox[1] + bbox[3] > self.box.winfo_height():
            return f"scroll({cx}, {cy}, 0, {100 if index > self.box.nearest(0) else -100})"
        _x, y, _w, h = bbox
        return f"double_click({cx}, {self.box.winfo_rooty() + y + h // 2})"


class DragSlider(Task):
    def build(self) -> None:
        self.target = self.rng.randint(5, 95)
        start = self.rng.choice([v for v in range(0, 101, 10) if abs(v - self.target) > 3])
        self.instruction = f"Drag the slider to {self.target}, then click Submit."
        x, y = self.rng.randint(230, self.width - 230), self.rng.randint(100, self.height - 130)
        self.scale = tk.Scale(self.root, from_=0, to=100, orient="horizontal", length=400, font=FONT,
                              resolution=1, sliderlength=20)
        self.scale.set(start)
        self.scale.place(x=x, y=y, anchor="center")
        self.submit = tk.Button(self.root, text="Submit", font=FONT, command=lambda: self.finish(self.solved()))
        self.submit.place(x=x, y=y + 70, anchor="center")

    def solved(self) -> bool:
        return self.won or int(self.scale.get()) == self.target

    def expert(self) -> str:
        value = int(self.scale.get())
        if value == self.target:
            return click(self.submit)
        rx, ry = self.scale.winfo_rootx(), self.scale.winfo_rooty()
        x1, y1 = self.scale.coords(value)
        x2, _ = self.scale.coords(self.target)
        return f"drag({rx + x1}, {ry + y1}, {rx + x2}, {ry + y1})"


class MenuCommand(Task):
    def build(self) -> None:
        names = self.rng.sample(sorted(MENUS), 3)
        self.target_menu = self.rng.choice(names)
        self.target = self.rng.choice(MENUS[self.target_menu])
        self.instruction = f"Choose {self.target_menu} > {self.target} from the menus."
        bar = tk.Frame(self.root, bd=1, relief="raised")
        bar.place(x=0, y=44, width=self.width, height=34)
        self.buttons: dict[str, tk.Menubutton] = {}
        self.menus: dict[str, tk.Menu] = {}
        for name in names:
            mb = tk.Menubutton(bar, text=name, font=FONT, padx=10)
            menu = tk.Menu(mb, tearoff=False, font=FONT)
            for item in MENUS[name]:
                menu.add_command(label=item, command=functools.partial(self.choose, name, item))
            mb.configure(menu=menu)
            mb.pack(side="left")
            self.buttons[name], self.menus[name] = mb, menu
        tk.Label(self.root, text="Untitled document", font=FONT, bg="white").place(
            x=20, y=100, width=self.width - 40, height=self.height - 120)

    def choose(self, menu: str, item: str) -> None:
        self.finish((menu, item) == (self.target_menu, self.target))

    def expert(self) -> str:
        menu = self.menus[self.target_menu]
        if not menu.winfo_ismapped():
            return click(self.buttons[self.target_menu])
        index = MENUS[self.target_menu].index(self.target)
        top = menu.yposition(index)
        bottom = menu.yposition(index + 1) if index + 1 < len(MENUS[self.target_menu]) else \
            menu.winfo_height() - int(menu.winfo_fpixels(menu.cget("borderwidth")))
        return f"click({menu.winfo_rootx() + menu.winfo_width() // 2}, {menu.winfo_rooty() + (top + bottom) // 2})"


class Calculator(Task):
    KEYS = ("789/", "456*", "123-", "C0=+")

    def build(self) -> None:
        op = self.rng.choice("+-*")
        a, b = self.rng.randint(2, 49), self.rng.randint(2, 19 if op == "*" else 49)
        self.expression, self.answer = f"{a}{op}{b}", {"+": a + b, "-": a - b, "*": a * b}[op]
        self.instruction = f"Use the calculator to compute {a} {op} {b}: click its keys, then '='."
        self.input = ""
        x0 = self.rng.randint(20, self.width - 260)
        self.display = tk.Label(self.root, text="0", font=("DejaVu Sans Mono", 16), bg="white", anchor="e",
                                relief="sunken", padx=6)
        self.display.place(x=x0, y=70, width=240, height=44)
        self.keys: dict[str, tk.Button] = {}
        for r, row in enumerate(self.KEYS):
            for c, key in enumerate(row):
                button = tk.Button(self.root, text=key, font=FONT, command=functools.partial(self.press, key))
                button.place(x=x0 + c * 60, y=124 + r * 60, width=56, height=56)
                self.keys[key] = button

    def press(self, key: str) -> None:
        if key == "C":
            self.input = ""
        elif key == "=":
            result = evaluate(self.input)
            self.input = "" if result is None else str(result)
            self.finish(result == self.answer)
        else:
            self.input += key
        self.display.configure(text=self.input or "0")

    def solved(self) -> bool:
        return self.won or self.input == str(self.answer)

    def expert(self) -> str:
        if self.input == self.expression:
            return click(self.keys["="])
        if self.expression.startswith(self.input):
            return click(self.keys[self.expression[len(self.input)]])
        return click(self.keys["C"])


class KeyPress(Task):
    def build(self) -> None:
        self.target = self.rng.choice(COMBOS)
        self.instruction = f"Press the key combination {self.target} (keys are written as in key(...))."
        self.note = tk.Label(self.root, text="Waiting for a key press...", font=FONT, bg="white")
        self.note.place(x=20, y=60, width=self.width - 40, height=self.height - 80)
        self.root.bind("<KeyPress>", self.on_key)  # not bind_all: Tk binds <Alt-KeyPress> on "all"

    def on_key(self, event: tk.Event) -> None:
        key = {"Return": "enter", "Escape": "escape"}.get(event.keysym, event.keysym.lower())
        if key.startswith(("control", "shift", "alt", "super", "meta")):
            return
        state = int(event.state)
        mods = [m for m, bit in (("ctrl", 0x4), ("alt", 0x8), ("shift", 0x1)) if state & bit]
        combo = "+".join([*mods, key])
        self.note.configure(text=f"You pressed {combo}")
        self.finish(combo == self.target)

    def expert(self) -> str:
        return f'key("{self.target}")'


def evaluate(expression: str) -> int | None:
    """A left-to-right integer evaluation of what was keyed in (no precedence: a pocket calculator's)."""
    value: int | None = None
    op, number = "+", ""
    for ch in expression + "=":
        if ch.isdigit():
            number += ch
            continue
        if not number:
            return None
        n = int(number)
        if op == "/" and n == 0:
            return None
        value = {"+": (value or 0) + n, "-": (value or 0) - n, "*": (value or 0) * n,
                 "/": (value or 0) // n if n else 0}[op]
        op, number = ch, ""
    return value


TASKS: dict[str, Callable[[tk.Tk, random.Random, int, int], Task]] = {
    "click-button": ClickButton, "type-text": TypeText, "check-boxes": CheckBoxes, "select-list": SelectList,
    "drag-slider": DragSlider, "menu-command": MenuCommand, "calculator": Calculator, "key-press": KeyPress,
}


def main(argv: list[str]) -> int:
    """Run one task; SEED ``-`` connects to the display first and waits for ``start SEED`` on stdin, so a
    program can be started ahead of its episode and the episode need not wait for Python and Tk to load."""
    if len(argv) not in (2, 4) or argv[0] not in TASKS or not (argv[1] == "-" or argv[1].isdigit()):
        print(f"usage: desktop_apps.py {{{','.join(TASKS)}}} SEED|- [WIDTH HEIGHT]", file=sys.stderr)
        return 2
    width, height = (int(argv[2]), int(argv[3])) if len(argv) == 4 else (640, 480)
    root = tk.Tk(className="agentenv")
    root.withdraw()
    buffer = b""
    seed = argv[1]
    while seed == "-":
        chunk = os.read(0, 4096)
        if not chunk:
            return 0
        buffer += chunk
        if b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            words = line.decode().split()
            if len(words) != 2 or words[0] != "start" or not words[1].isdigit():
                print(f"expected 'start SEED', got {line[:80]!r}", file=sys.stderr)
                return 2
            seed = words[1]
    root.title(f"agentenv {argv[0]}")
    root.overrideredirect(True)
    root.geometry(f"{width}x{height}+0+0")
    task = TASKS[argv[0]](root, random.Random(int(seed)), width, height)
    root.deiconify()

    def reply(seq: int) -> None:
        try:
            root.update()
            state = task.state()
        except Exception as exc:  # reported, so the env fails with the reason instead of a silent exit
            state = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps({"seq": seq, **state}) + "\n")
        sys.stdout.flush()

    def handle(lines: bytes) -> bytes:
        while b"\n" in lines:
            line, lines = lines.split(b"\n", 1)
            words = line.decode().split()
            if words[:1] == ["state"] and len(words) == 2 and words[1].isdigit():
                reply(int(words[1]))
            elif words[:1] == ["quit"]:
                raise SystemExit(0)
        return lines

    def on_stdin(_file: object, _mask: int) -> None:
        nonlocal buffer
        chunk = os.read(0, 4096)
        if not chunk:
            raise SystemExit(0)  # the env is gone
        buffer = handle(buffer + chunk)

    root.update()
    root.focus_force()
    reply(0)
    buffer = handle(buffer)
    root.tk.createfilehandler(0, tk.READABLE, on_stdin)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Environment families shipped with agentenv (installed as ``agentenv.envs``)."""

from agentenv.registry import register


def register_envs() -> None:
    """Entry point of the ``agentenv.envs`` group for the built-in environments."""
    register(
        "agentenv/GuessNumber-v0",
        "agentenv.envs.puzzles.guess_number:GuessNumberEnv",
        family="puzzle",
        description="Find a hidden integer with a guess tool that answers higher/lower (tool calls).",
    )
    register(
        "agentenv/Maze-v0",
        "agentenv.envs.puzzles.maze:MazeEnv",
        family="puzzle",
        description="Walk a text maze to the exit; admissible moves listed each turn (ReAct text).",
    )
    register(
        "agentenv/ALFWorld-v0",
        "agentenv.envs.alfworld.env:ALFWorldEnv",
        family="alfworld",
        description="ALFWorld's text households (six task types) on a native engine; real data via ALFWORLD_DATA.",
    )
    register(
        "agentenv/CodeInterpreter-v0",
        "agentenv.envs.code.env:CodeInterpreterEnv",
        family="code",
        description="Reasoning-gym tasks solved with a sandboxed, stateful Python tool and an answer tool.",
    )
    register(
        "agentenv/CodeMath-v0",
        "agentenv.envs.code.env:CodeInterpreterEnv",
        family="code",
        description="Math word problems (gsm_symbolic) with a sandboxed Python tool, checked by math-verify.",
        kwargs={"families": ("gsm_symbolic",)},
    )
    register(
        "agentenv/SWE-v0",
        "agentenv.envs.swe.env:SweEnv",
        family="swe",
        description="Fix real bugs in small Python repos (27 bundled tasks) with bash, an editor and tests; "
        "judged as SWE-bench judges.",
    )
    register(
        "agentenv/WebShop-v0",
        "agentenv.envs.web.webshop:WebShopEnv",
        family="web",
        description="Find and buy what an instruction asks for in a 2,400-product store (WebShop's reward), "
        "in Chromium.",
    )
    from agentenv.envs.gui import register_gui_web
    from agentenv.envs.gui.desktop import register_desktop
    from agentenv.envs.web.miniwob import register_miniwob

    register_miniwob()
    register_gui_web()
    register_desktop()
    from agentenv.envs.web.dream import register_dreams

    register_dreams()

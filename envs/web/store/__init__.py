"""A WebShop-style store: a generated catalog, instructions, WebShop's reward, BM25 search, HTML pages, an expert.

Everything is stdlib + FastAPI and deterministic from a seed, so episodes are reproducible offline; a browser
env (Playwright) drives the pages through their stable element ids.
"""

from agentenv.envs.web.store.catalog import Product, build_catalog
from agentenv.envs.web.store.instructions import Goal, goals
from agentenv.envs.web.store.reward import get_reward

__all__ = ["Goal", "Product", "build_catalog", "get_reward", "goals"]

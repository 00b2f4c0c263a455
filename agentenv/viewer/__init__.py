"""The trajectory viewer: ``agentenv view DIR...`` serves a local page over runs and trajectory stores."""

from agentenv.viewer.app import create_viewer_app
from agentenv.viewer.export import export_episode_html

__all__ = ["create_viewer_app", "export_episode_html"]

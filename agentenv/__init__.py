"""agentenv: environments, token-exact rollouts and trainers for multi-turn LLM agents.

``envs/``, ``policies/``, ``trainers/`` and ``sandboxes/`` install as ``agentenv.envs``,
``agentenv.policies``, ``agentenv.trainers`` and ``agentenv.sandboxes``.
"""

from agentenv.checker import CheckReport, EnvContractError, check_env
from agentenv.env import Env, GraderError, ResetNeeded, StepResult
from agentenv.messages import Message, Observation, message, observation
from agentenv.parsing import ActionParseError, ParsedAction, ReActParser, ToolCall, ToolCallParser
from agentenv.policy import (
    Continuation,
    ModelError,
    Policy,
    PolicyError,
    PolicyOutput,
    PolicyRequest,
    PolicyUnavailable,
    SamplingParams,
)
from agentenv.prompting import Conversation, PromptConfig
from agentenv.registry import EnvInfo, UnknownEnvError, load_plugins, make, register, registered_envs
from agentenv.trajectory import SCHEMA_VERSION, Trajectory, Turn

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "ActionParseError",
    "CheckReport",
    "Continuation",
    "Conversation",
    "Env",
    "EnvContractError",
    "EnvInfo",
    "GraderError",
    "Message",
    "ModelError",
    "Observation",
    "ParsedAction",
    "Policy",
    "PolicyError",
    "PolicyOutput",
    "PolicyRequest",
    "PolicyUnavailable",
    "PromptConfig",
    "ReActParser",
    "ResetNeeded",
    "SamplingParams",
    "StepResult",
    "ToolCall",
    "ToolCallParser",
    "Trajectory",
    "Turn",
    "UnknownEnvError",
    "check_env",
    "make",
    "message",
    "observation",
    "register",
    "registered_envs",
]

# Register the built-in and plugin envs now so that `gymnasium.make("agentenv/...")` works after
# `import agentenv`; env classes are lazy "module:Class" strings, so this imports none of them.
load_plugins()

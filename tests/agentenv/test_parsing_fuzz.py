"""Reliability B11: fuzzed tool calls (Hypothesis) never crash the parser or an environment.

Every input either parses into calls that satisfy the tools' schemas, or raises `ActionParseError`, which
the env turns into an error observation with nothing dispatched. The default runs a few thousand cases;
`AGENTENV_FUZZ_EXAMPLES=100000` is the release setting of the reliability guide.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentenv.envs.code.env import TOOLS as CODE_TOOLS
from agentenv.envs.swe.env import TOOLS as SWE_TOOLS
from agentenv.parsing import ActionParseError, ToolCallParser, check_arguments

EXAMPLES = int(os.environ.get("AGENTENV_FUZZ_EXAMPLES", "3000"))
PARSERS = [ToolCallParser(CODE_TOOLS, max_calls=1), ToolCallParser(SWE_TOOLS, max_calls=1)]
SCHEMAS = [{t["function"]["name"]: t["function"]["parameters"] for t in tools} for tools in (CODE_TOOLS, SWE_TOOLS)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
names = st.sampled_from(["python", "answer", "bash", "str_replace_editor", "run_tests", "submit", "shell", ""])
calls = st.fixed_dictionaries({"name": names, "arguments": json_values | st.text()})


def mangle(text: str, cut: int, junk: str) -> str:
    return text[: cut % (len(text) + 1)] + junk


inputs = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")),
    calls.map(lambda c: "<tool_call>" + json.dumps(c) + "</tool_call>"),
    st.tuples(calls, st.integers(0, 400), st.text(max_size=20)).map(
        lambda t: mangle("<tool_call>" + json.dumps(t[0]) + "</tool_call>", t[1], t[2])),
    st.lists(calls, max_size=3).map(lambda cs: "".join("<tool_call>" + json.dumps(c) + "</tool_call>" for c in cs)),
    st.integers(1, 3000).map(lambda n: "<tool_call>" + "[" * n + "</tool_call>"),
    st.integers(1, 5000).map(lambda n: '{"name": "answer", "arguments": {"answer": ' + "9" * n + "}}"),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs)
def test_b11_fuzzed_tool_calls_parse_or_fail_cleanly(text):
    for parser, schemas in zip(PARSERS, SCHEMAS, strict=True):
        try:
            parsed = parser.parse(text)
        except ActionParseError as exc:
            assert str(exc)
            continue
        assert len(parsed.tool_calls) == 1
        call = parsed.tool_calls[0]
        check_arguments(call.name, call.arguments, schemas[call.name])  # what is dispatched fits the schema

"""The action parsers: every shape of tool call models emit, every way they get it wrong, and ReAct text."""

import pytest

from agentenv.parsing import MAX_JSON_DEPTH, ActionParseError, ReActParser, ToolCallParser


def _tool(name: str, properties: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": properties, "required": required or []},
        },
    }


TOOLS = [
    _tool("guess", {"number": {"type": "integer", "minimum": 1, "maximum": 100}}, ["number"]),
    _tool("search", {"query": {"type": "string"}, "limit": {"type": "number"}, "tags": {"type": "array"}}, ["query"]),
]


def _parser(max_calls: int = 8) -> ToolCallParser:
    return ToolCallParser(TOOLS, max_calls=max_calls)


def _calls(text: str) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for c in _parser().parse(text).tool_calls]


def _error(text: str, parser: ToolCallParser | None = None) -> str:
    with pytest.raises(ActionParseError) as e:
        (parser or _parser()).parse(text)
    return str(e.value)


# ----- tool calls that parse ---------------------------------------------------------------------------


def test_bare_json_object_is_one_tool_call():
    assert _calls('{"name": "guess", "arguments": {"number": 50}}') == [("guess", {"number": 50})]


def test_prose_around_bare_json_is_ignored():
    text = 'I will guess.\n{"name": "guess", "arguments": {"number": 7}} and then wait'
    assert _calls(text) == [("guess", {"number": 7})]


def test_json_list_gives_every_call_in_order():
    text = '[{"name": "guess", "arguments": {"number": 1}}, {"name": "search", "arguments": {"query": "q"}}]'
    assert _calls(text) == [("guess", {"number": 1}), ("search", {"query": "q"})]


def test_several_tool_call_tags_in_one_turn_give_several_calls():
    text = (
        "Let me try two things.\n"
        '<tool_call>{"name": "guess", "arguments": {"number": 3}}</tool_call>\n'
        '<tool_call>\n{"name": "search", "arguments": {"query": "hint"}}\n</tool_call>'
    )
    assert _calls(text) == [("guess", {"number": 3}), ("search", {"query": "hint"})]


def test_unclosed_last_tool_call_tag_still_parses():
    assert _calls('<tool_call>{"name": "guess", "arguments": {"number": 9}}') == [("guess", {"number": 9})]


def test_fenced_json_block_is_parsed():
    text = 'Here is my call:\n```json\n{"name": "guess", "arguments": {"number": 42}}\n```\nDone.'
    assert _calls(text) == [("guess", {"number": 42})]


def test_openai_function_shape_is_unwrapped_and_keeps_its_id():
    text = '{"id": "call_1", "type": "function", "function": {"name": "guess", "arguments": {"number": 5}}}'
    (call,) = _parser().parse(text).tool_calls
    assert (call.name, call.arguments, call.id) == ("guess", {"number": 5}, "call_1")


def test_arguments_given_as_a_json_string_are_decoded():
    text = '{"function": {"name": "guess", "arguments": "{\\"number\\": 12}"}}'
    assert _calls(text) == [("guess", {"number": 12})]


def test_empty_arguments_string_means_no_arguments():
    parser = ToolCallParser([_tool("noop", {})])
    (call,) = parser.parse('{"name": "noop", "arguments": ""}').tool_calls
    assert call.arguments == {}


def test_integer_is_accepted_where_a_number_is_expected():
    assert _calls('{"name": "search", "arguments": {"query": "a", "limit": 3}}') == [
        ("search", {"query": "a", "limit": 3})
    ]


# ----- tool calls that do not parse, with a message the model can act on -------------------------------


def test_text_without_json_explains_the_expected_format():
    message = _error("I think the answer is fifty.")
    assert "no tool call found" in message
    assert "<tool_call>" in message and "guess" in message and "search" in message


def test_truncated_json_is_an_error_that_shows_the_format():
    message = _error('{"name": "guess", "arguments": {"number": ')
    assert "invalid JSON" in message
    assert "<tool_call>" in message


def test_trailing_comma_is_an_error():
    message = _error('{"name": "guess", "arguments": {"number": 4,}}')
    assert "invalid JSON" in message


def test_unknown_tool_is_named_and_known_tools_listed():
    message = _error('{"name": "guesss", "arguments": {"number": 4}}')
    assert "unknown tool 'guesss'" in message
    assert "guess, search" in message


def test_call_without_name_is_an_error():
    assert '"name"' in _error('{"arguments": {"number": 4}}')


def test_string_for_integer_argument_is_a_type_error():
    message = _error('{"name": "guess", "arguments": {"number": "4"}}')
    assert "'number' must be of type integer" in message


def test_float_for_integer_argument_is_a_type_error():
    assert "must be of type integer" in _error('{"name": "guess", "arguments": {"number": 4.5}}')


def test_bool_for_integer_argument_is_a_type_error():
    assert "must be of type integer" in _error('{"name": "guess", "arguments": {"number": true}}')


def test_bool_for_number_argument_is_a_type_error():
    assert "must be of type number" in _error('{"name": "search", "arguments": {"query": "a", "limit": false}}')


def test_missing_required_argument_is_named():
    assert "missing required argument 'number'" in _error('{"name": "guess", "arguments": {}}')


def test_unknown_argument_is_named_with_the_expected_ones():
    message = _error('{"name": "guess", "arguments": {"number": 3, "hint": 1}}')
    assert "unknown argument(s) ['hint']" in message
    assert "['number']" in message


def test_argument_below_minimum_is_an_error():
    assert "'number' must be >= 1" in _error('{"name": "guess", "arguments": {"number": 0}}')


def test_argument_above_maximum_is_an_error():
    assert "'number' must be <= 100" in _error('{"name": "guess", "arguments": {"number": 101}}')


def test_arguments_that_are_not_an_object_are_an_error():
    assert "must be a JSON object" in _error('{"name": "guess", "arguments": [50]}')


def test_list_item_that_is_not_an_object_is_an_error():
    assert "must be a JSON object, got int" in _error("[1, 2]")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(constant):
    message = _error(f'{{"name": "search", "arguments": {{"query": "a", "limit": {constant}}}}}')
    assert "not valid JSON" in message


def test_100000_nested_brackets_raise_parse_error_not_recursion_error():
    message = _error("[" * 100_000)
    assert f"nested deeper than {MAX_JSON_DEPTH}" in message


def test_deep_but_complete_json_followed_by_prose_is_still_too_deep():
    depth = MAX_JSON_DEPTH + 8
    nested = "[" * depth + "]" * depth
    message = _error(f'{{"name": "search", "arguments": {{"query": "a", "tags": {nested}}}}} thanks')
    assert "nested deeper" in message


def test_integer_with_100000_digits_is_rejected():
    message = _error('{"name": "guess", "arguments": {"number": ' + "9" * 100_000 + "}}")
    assert "invalid JSON" in message


def test_more_calls_than_allowed_is_an_error():
    call = '<tool_call>{"name": "guess", "arguments": {"number": 1}}</tool_call>'
    message = _error(call * 3, _parser(max_calls=2))
    assert "3 tool calls in one turn; at most 2" in message


def test_empty_call_list_is_an_error():
    assert "empty tool call list" in _error("[]")


# ----- ReAct text ---------------------------------------------------------------------------------------

ADMISSIBLE = ["go north", "go south", "take key"]


def test_react_takes_the_command_after_action():
    parsed = ReActParser().parse("Thought: the door is north.\nAction: go north")
    assert parsed.command == "go north"


def test_react_last_action_line_wins():
    text = "Action: go south\nThought: no, wait.\nAction: go north"
    assert ReActParser().parse(text).command == "go north"


@pytest.mark.parametrize(
    "line", ["**Action:** go north", "**Action**: go north", "action: go north", "  Action:`go north`"]
)
def test_react_accepts_markdown_and_case_variants(line):
    assert ReActParser().parse(f"Thought: hm\n{line}").command == "go north"


def test_react_without_action_line_is_an_error_showing_the_format():
    with pytest.raises(ActionParseError) as e:
        ReActParser().parse("Thought: I should go north.\nI go north.")
    assert "no 'Action:' line" in str(e.value) and "Action: <command>" in str(e.value)


def test_react_empty_action_line_is_an_error():
    with pytest.raises(ActionParseError, match="empty"):
        ReActParser().parse("Action:   ")


def test_bare_command_mode_takes_a_single_line_reply():
    assert ReActParser(bare_commands=True).parse("  take key \n").command == "take key"


def test_bare_command_mode_rejects_multiline_replies_without_action():
    with pytest.raises(ActionParseError):
        ReActParser(bare_commands=True).parse("take key\nthen go north")


def test_bare_commands_are_off_by_default():
    with pytest.raises(ActionParseError):
        ReActParser().parse("take key")


def test_admissible_matching_ignores_case_spacing_and_final_period():
    parsed = ReActParser().parse("Action:  Go   NORTH.", ADMISSIBLE)
    assert parsed.command == "go north"


def test_inadmissible_command_error_lists_the_options():
    with pytest.raises(ActionParseError) as e:
        ReActParser().parse("Action: fly away", ADMISSIBLE)
    message = str(e.value)
    assert "'fly away' is not an admissible action" in message
    assert "go north, go south, take key" in message


def test_inadmissible_command_error_shortens_a_long_option_list():
    options = [f"open box {i}" for i in range(30)]
    with pytest.raises(ActionParseError) as e:
        ReActParser().parse("Action: open box 99", options)
    assert "open box 11, ..." in str(e.value)
    assert "open box 12" not in str(e.value)


def test_lenient_react_takes_the_one_admissible_action_the_reply_mentions():
    parser = ReActParser(bare_commands=True, lenient=True)
    assert parser.parse("You must go east.", ["go east", "go west"]).command == "go east"
    assert parser.parse("I think\nwe should GO   east now", ["go east", "go west"]).command == "go east"


def test_lenient_react_rejects_a_reply_naming_two_actions_or_none():
    parser = ReActParser(bare_commands=True, lenient=True)
    with pytest.raises(ActionParseError, match="not an admissible action"):
        parser.parse("go east or go west?", ["go east", "go west"])
    with pytest.raises(ActionParseError):
        parser.parse("I go eastwards", ["go east", "go west"])


def test_strict_react_does_not_accept_a_mention():
    with pytest.raises(ActionParseError):
        ReActParser(bare_commands=True).parse("You must go east.", ["go east", "go west"])

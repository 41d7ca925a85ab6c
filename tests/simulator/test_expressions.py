import dataclasses

import pytest

from simulator.expressions import Expression, ExpressionError, compile_expression

TASK = {
    "sid": "WT0001",
    "type": "call",
    "priority": 5,
    "rating": 4.5,
    "vip": True,
    "language": "en",
    "email": "ada@example.com",
    "skills": ["support", "billing"],
    "customer": {"tier": "gold", "address": {"country": "FR"}},
}


def matches(text: str, task: dict | None = TASK, worker: dict | None = None) -> bool:
    return compile_expression(text).matches(task=task, worker=worker)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.type == 'call'", True),
        ("task.type == 'chat'", False),
        ("task.type = 'call'", True),
        ("task.type != 'chat'", True),
        ("task.type != 'call'", False),
        ("task.priority > 4", True),
        ("task.priority > 5", False),
        ("task.priority < 6", True),
        ("task.priority < 5", False),
        ("task.priority >= 5", True),
        ("task.priority >= 5.5", False),
        ("task.priority <= 5.0", True),
        ("task.rating <= 4", False),
        ("task.language IN ['en', 'es']", True),
        ("task.language IN ['fr', 'es']", False),
        ("task.language NOT IN ['fr', 'es']", True),
        ("task.language NOT IN ['en', 'es']", False),
        ("task.skills HAS 'support'", True),
        ("task.skills HAS 'sales'", False),
        ("task.email CONTAINS '@example.'", True),
        ("task.email CONTAINS '@twilio.'", False),
    ],
)
def test_operators(text, expected):
    """Each operator is true when its relation holds and false when it does not."""
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.skills IN ['sales', 'billing']", True),
        ("task.skills IN ['sales', 'voice']", False),
        ("task.skills NOT IN ['sales', 'voice']", True),
        ("'support' IN task.skills", True),
        ("task.language IN task.skills", False),
        ("task.language IN task.type", False),
        ("task.type HAS 'call'", True),
        ("task.skills CONTAINS 'billing'", True),
        ("task.skills CONTAINS 'bill'", False),
        ("task.priority CONTAINS '5'", False),
    ],
)
def test_list_and_string_operands(text, expected):
    """IN takes any element of a left-hand list, HAS accepts a string and CONTAINS a list."""
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.priority == 5.0", True),
        ("task.priority == '5'", False),
        ("task.type > 'cab'", True),
        ("task.type < 'cab'", False),
        ("task.priority > '4'", False),
        ("task.priority < '9'", False),
        ("task.missing < 1", False),
        ("task.missing >= 0", False),
        ("task.vip > false", False),
        ("task.priority IN [1, 5, 9]", True),
        ("task.priority IN ['5']", False),
    ],
)
def test_numbers_and_strings(text, expected):
    """Numbers compare numerically, strings as strings, and mixed types never order."""
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.missing == null", True),
        ("task.missing != null", False),
        ("task.type == null", False),
        ("task.type != null", True),
        ("task.missing != 'call'", True),
        ("task.missing IN ['call']", False),
        ("task.missing HAS 'call'", False),
        ("task.missing CONTAINS 'call'", False),
        ("task.customer.missing.deeper == null", True),
        ("task.type.length == null", True),
        ("null == null", True),
    ],
)
def test_null_handling(text, expected):
    """A missing attribute, or a path through a non-object, evaluates to null."""
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.vip == true", True),
        ("task.vip == false", False),
        ("task.vip != false", True),
        ("task.priority == true", False),
        ("1 == true", False),
    ],
)
def test_booleans(text, expected):
    """Boolean literals compare with JSON booleans and never equal numbers."""
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1==1", True),
        ("1 == 2", False),
        ("'a' == \"a\"", True),
        ("-1.5 < 0", True),
        ("1 = 1", True),
    ],
)
def test_literal_comparisons(text, expected):
    """Comparisons between constants work, so `1==1` matches every task."""
    assert matches(text, task={}) is expected


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"a": 1, "b": 0, "c": 0}, True),
        ({"a": 0, "b": 1, "c": 0}, False),
        ({"a": 0, "b": 1, "c": 1}, True),
    ],
)
def test_and_binds_tighter_than_or(task, expected):
    """`a OR b AND c` reads as `a OR (b AND c)`."""
    assert matches("a == 1 OR b == 1 AND c == 1", task=task) is expected


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"a": 1, "b": 0, "c": 0}, False),
        ({"a": 1, "b": 0, "c": 1}, True),
        ({"a": 0, "b": 1, "c": 1}, True),
    ],
)
def test_parentheses_group(task, expected):
    """Parentheses override precedence, even when nested."""
    assert matches("((a == 1) OR (b == 1)) AND (c == 1)", task=task) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.customer.tier == 'gold'", True),
        ("task.customer.address.country == 'FR'", True),
        ("task.customer.address.country == 'fr'", False),
        ("customer.address.country == 'FR'", True),
    ],
)
def test_nested_attributes(text, expected):
    """Dotted paths walk into nested objects, with or without the scope prefix."""
    assert matches(text) is expected


def test_default_scope_task():
    """Unprefixed identifiers resolve against the task by default."""
    expression = compile_expression("type == 'call'")

    assert expression.matches(task={"type": "call"}, worker={"type": "other"})
    assert not expression.matches(task={"type": "other"}, worker={"type": "call"})


def test_default_scope_worker():
    """With the worker scope, unprefixed identifiers resolve against the worker."""
    expression = compile_expression("skills HAS 'support' AND task.language == 'en'", "worker")

    assert expression.matches(task={"language": "en"}, worker={"skills": ["support"]})
    assert not expression.matches(task={"language": "en", "skills": ["support"]}, worker={})


def test_bare_scope_name_is_an_attribute():
    """A scope name without a path is an ordinary attribute in the default scope."""
    assert matches("task == 'x'", task={"task": "x"})


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"transferExcludedWorkers": ["WK1", "WK2"]}, False),
        ({"transferExcludedWorkers": ["WK2"]}, True),
        ({"transferExcludedWorkers": []}, True),
        ({}, True),
        ({"transferExcludedWorkers": None}, True),
    ],
)
def test_excluded_workers(task, expected):
    """`worker.sid NOT IN task.transferExcludedWorkers` excludes only listed workers."""
    expression = compile_expression("worker.sid NOT IN task.transferExcludedWorkers", "worker")

    assert expression.matches(task=task, worker={"sid": "WK1"}) is expected


@pytest.mark.parametrize(
    ("task", "worker_sid", "expected"),
    [
        ({"transferTargetType": "worker", "transferTargetSid": "WK1"}, "WK1", True),
        ({"transferTargetType": "worker", "transferTargetSid": "WK1"}, "WK2", False),
        ({"transferTargetType": "queue", "transferTargetSid": "WK1"}, "WK1", False),
    ],
)
def test_known_worker_target(task, worker_sid, expected):
    """The known-worker target expression selects exactly the named worker."""
    expression = compile_expression(
        'task.transferTargetType == "worker" AND task.transferTargetSid == worker.sid', "worker"
    )

    assert expression.matches(task=task, worker={"sid": worker_sid}) is expected


def test_known_worker_filter():
    """The known-worker workflow filter matches on the task's transfer attributes."""
    text = 'task.transferTargetType == "worker" AND task.transferTargetSid == "WK1"'

    assert matches(text, task={"transferTargetType": "worker", "transferTargetSid": "WK1"})
    assert not matches(text, task={"transferTargetType": "worker", "transferTargetSid": "WK2"})


@pytest.mark.parametrize(
    "text",
    [
        "TASK.type == 'call' and task.priority IN [5] Or 1 == 2",
        "Task.Type == 'x' OR task.skills has 'support'",
        "task.language not in ['fr'] AND task.vip == TRUE AND task.missing == NULL",
        "task.email contains 'ada'",
    ],
)
def test_keywords_are_case_insensitive(text):
    """Keywords, constants and scope prefixes match in any case."""
    assert matches(text)


def test_attribute_names_are_case_sensitive():
    """Attribute names keep their case."""
    assert not matches("task.Type == 'call'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.priority IN [1, 2.5, 'five', true, null]", False),
        ("task.vip IN [1, 2.5, 'five', true, null]", True),
        ("task.missing IN [null]", True),
        ("task.language IN []", False),
        ("task.language NOT IN []", True),
        ("task.skills == ['support', 'billing']", True),
        ("""task.quote == 'it\\'s' AND task.quote IN ["it's", "x"]""", True),
        ("""task.quote == "it\\"s" """, False),
    ],
)
def test_list_literals_and_strings(text, expected):
    """List literals hold mixed constants and quoted strings honour backslash escapes."""
    task = dict(TASK, quote="it's")

    assert matches(text, task=task) is expected


def test_missing_mappings_are_empty():
    """Omitting the task or worker makes every lookup in it null."""
    expression = compile_expression("worker.sid == null AND task.type == null")

    assert expression.matches()


def test_expression_is_immutable():
    """A compiled expression is a frozen value that keeps its source text."""
    expression = compile_expression("1==1")

    assert isinstance(expression, Expression)
    assert expression.text == "1==1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        expression.text = "1==2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "task.type ==",
        "== 'call'",
        "task.type === 'call'",
        "task.type <> 'call'",
        "task.type == 'call",
        'task.type == "call',
        "(task.type == 'call'",
        "task.type == 'call')",
        "((1 == 1)",
        "task.type == 'call' 1",
        "task.type == 'call' AND",
        "OR task.type == 'call'",
        "task.type 'call'",
        "task.type",
        "task.customer-tier == 'gold'",
        "customer-tier == 'gold'",
        "task. == 1",
        "task.x.. == 1",
        "task.type NOT 'call'",
        "task.type IN ['a', task.b]",
        "task.type IN ['a',]",
        "task.type IN ['a'",
        "task.type == 'a' == 'b'",
        "NOT task.type == 'a'",
        "task.skills[0] == 'support'",
        "task.type == 'a' && 1 == 1",
        "task.type 'IN' ['a']",
        "()",
        "1 == 1 AND ()",
    ],
)
def test_malformed(text):
    """Malformed expressions raise ExpressionError."""
    with pytest.raises(ExpressionError):
        compile_expression(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x ==", "Invalid expression 'x ==': unexpected end of expression"),
        ("x === 1", "Invalid expression 'x === 1': unknown operator '===' at char 2"),
        ("x == 'a", "Invalid expression 'x == 'a': unterminated string starting at char 5"),
        ("(x == 1", "Invalid expression '(x == 1': unexpected end of expression, expected ')'"),
        ("x == 1 y", "Invalid expression 'x == 1 y': unexpected token 'y' at char 7"),
        ("a-b == 1", "Invalid expression 'a-b == 1': hyphens are not supported"),
        ("task. == 1", "Invalid expression 'task. == 1': incomplete identifier 'task.' at char 0"),
    ],
)
def test_error_messages(text, message):
    """Error messages quote the expression and name the offending token or position."""
    with pytest.raises(ExpressionError) as excinfo:
        compile_expression(text)

    assert str(excinfo.value).startswith(message)


def test_error_is_a_value_error():
    """ExpressionError is a ValueError so generic 400 handlers catch it."""
    assert issubclass(ExpressionError, ValueError)


def test_unknown_default_scope_is_rejected():
    """A default scope other than task or worker is a programming error."""
    with pytest.raises(ValueError, match="default_scope"):
        compile_expression("1 == 1", default_scope="queue")


def test_deep_nesting_is_an_expression_error():
    """Pathologically nested parentheses fail as a malformed expression, not a crash."""
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("(" * 5000 + "1 == 1" + ")" * 5000)

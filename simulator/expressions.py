"""The TaskRouter expression language, as the simulator evaluates it.

Workflow filter expressions, workflow target expressions and task queue ``target_workers``
expressions share one SQL-like syntax, https://www.twilio.com/docs/taskrouter/expression-syntax::

    task.transferTargetType == "worker" AND worker.sid NOT IN task.transferExcludedWorkers

An expression is parsed once by :func:`compile_expression` into a tree of small frozen nodes and
evaluated against task and worker attributes by :meth:`Expression.matches`.

Twilio documents the syntax but not every corner of the semantics; where it is silent this module
picks one reading and states it next to the rule that implements it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Expression", "ExpressionError", "compile_expression"]

_SCOPES = ("task", "worker")


class ExpressionError(ValueError):
    """A malformed expression; str(exc) is a message fit for a Twilio-style 400 error."""


# --- Tokenizer ---------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][\w-]*(?:\.[\w-]*)*)
  | (?P<operator>[=!<>]+)
  | (?P<punct>[()\[\],])
    """,
    re.VERBOSE | re.ASCII | re.DOTALL,
)
_OPERATORS = {"==": "==", "=": "==", "!=": "!=", ">": ">", "<": "<", ">=": ">=", "<=": "<="}
_KEYWORDS = {"and", "or", "in", "not", "has", "contains"}
_CONSTANTS = {"true": True, "false": False, "null": None}
# Only the quote characters and the backslash itself are escapable; any other backslash is kept
# as typed, so a pattern such as 'C:\temp' survives unchanged.
_ESCAPE_RE = re.compile(r"""\\(['"\\])""")


@dataclass(frozen=True)
class _Token:
    kind: str  # "literal", "name", "keyword", "operator", a punctuation character, or "end"
    text: str
    value: Any
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            if text[pos] in "'\"":
                raise _error(text, f"unterminated string starting at char {pos}")
            raise _error(text, f"unexpected character {text[pos]!r} at char {pos}")
        kind, lexeme = match.lastgroup, match.group()
        if kind == "string":
            tokens.append(_Token("literal", lexeme, _ESCAPE_RE.sub(r"\1", lexeme[1:-1]), pos))
        elif kind == "number":
            value = float(lexeme) if "." in lexeme else int(lexeme)
            tokens.append(_Token("literal", lexeme, value, pos))
        elif kind == "name":
            tokens.append(_name_token(text, lexeme, pos))
        elif kind == "operator":
            if lexeme not in _OPERATORS:
                raise _error(text, f"unknown operator '{lexeme}' at char {pos}")
            tokens.append(_Token("operator", lexeme, _OPERATORS[lexeme], pos))
        elif kind == "punct":
            tokens.append(_Token(lexeme, lexeme, None, pos))
        pos = match.end()
    tokens.append(_Token("end", "", None, pos))
    return tokens


def _name_token(text: str, lexeme: str, pos: int) -> _Token:
    # The name pattern swallows hyphens and empty segments only so they can be reported here
    # as one clear error instead of a confusing one about the token that follows.
    if "-" in lexeme:
        raise _error(text, f"hyphens are not supported in identifiers ('{lexeme}' at char {pos})")
    if "" in lexeme.split("."):
        raise _error(text, f"incomplete identifier '{lexeme}' at char {pos}")
    word = lexeme.lower()
    if word in _KEYWORDS:
        return _Token("keyword", lexeme, word.upper(), pos)
    if word in _CONSTANTS:
        return _Token("literal", lexeme, _CONSTANTS[word], pos)
    return _Token("name", lexeme, tuple(lexeme.split(".")), pos)


def _error(text: str, detail: str) -> ExpressionError:
    return ExpressionError(f"Invalid expression '{text}': {detail}")


# --- Syntax tree and evaluation ----------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # JSON booleans are Python ints; `true == 1` must still be false.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    # List literals are stored as tuples so that the syntax tree stays immutable.
    return isinstance(value, (list, tuple))


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return a == b
    if _is_list(a) and _is_list(b):
        return len(a) == len(b) and all(map(_equal, a, b))
    return type(a) is type(b) and a == b


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    # Ordering across types (or against null) is false rather than an error, so an attribute
    # that is missing or mistyped on one task never breaks routing for the others.
    def apply(a: Any, b: Any) -> bool:
        numbers = _is_number(a) and _is_number(b)
        return (numbers or (isinstance(a, str) and isinstance(b, str))) and compare(a, b)

    return apply


def _in(a: Any, b: Any) -> bool:
    if not _is_list(b):
        return False
    if _is_list(a):
        return any(_equal(item, other) for item in a for other in b)
    return any(_equal(a, other) for other in b)


def _has(a: Any, b: Any) -> bool:
    # A single string stands for a one-element list, so `skills HAS 'support'` still works for a
    # worker whose skills were saved as a plain string.
    if _is_list(a):
        return any(_equal(item, b) for item in a)
    return isinstance(a, str) and _equal(a, b)


def _contains(a: Any, b: Any) -> bool:
    # On a list this is membership, not a substring search inside its elements: the narrower of
    # the two readings, so a queue never picks up workers by a partial skill name.
    if _is_list(a):
        return any(_equal(item, b) for item in a)
    return isinstance(a, str) and isinstance(b, str) and b in a


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    # `!=` is the plain negation of `==`, so `task.x != "a"` is true when x is missing.
    "==": _equal,
    "!=": lambda a, b: not _equal(a, b),
    ">": _ordered(lambda a, b: a > b),
    "<": _ordered(lambda a, b: a < b),
    ">=": _ordered(lambda a, b: a >= b),
    "<=": _ordered(lambda a, b: a <= b),
    "IN": _in,
    # Also true when the right side is null or not a list: Baton's transfer queues rely on
    # `worker.sid NOT IN task.transferExcludedWorkers` matching every worker until a task
    # carries that attribute.
    "NOT IN": lambda a, b: not _in(a, b),
    "HAS": _has,
    "CONTAINS": _contains,
}


@dataclass(frozen=True)
class _Literal:
    value: Any

    def evaluate(self, scopes: Mapping[str, Mapping]) -> Any:
        return self.value


@dataclass(frozen=True)
class _Attribute:
    scope: str
    path: tuple[str, ...]

    def evaluate(self, scopes: Mapping[str, Mapping]) -> Any:
        value: Any = scopes[self.scope]
        for key in self.path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value


@dataclass(frozen=True)
class _Comparison:
    operator: str
    left: _Literal | _Attribute
    right: _Literal | _Attribute

    def evaluate(self, scopes: Mapping[str, Mapping]) -> bool:
        return _COMPARATORS[self.operator](self.left.evaluate(scopes), self.right.evaluate(scopes))


@dataclass(frozen=True)
class _And:
    operands: tuple[_Node, ...]

    def evaluate(self, scopes: Mapping[str, Mapping]) -> bool:
        return all(operand.evaluate(scopes) for operand in self.operands)


@dataclass(frozen=True)
class _Or:
    operands: tuple[_Node, ...]

    def evaluate(self, scopes: Mapping[str, Mapping]) -> bool:
        return any(operand.evaluate(scopes) for operand in self.operands)


_Node = _Comparison | _And | _Or


# --- Parser --------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over: or := and (OR and)*; and := condition (AND condition)*;
    condition := '(' or ')' | operand operator operand."""

    def __init__(self, text: str, default_scope: str) -> None:
        self._text = text
        self._default_scope = default_scope
        self._tokens = _tokenize(text)
        self._index = 0

    def parse(self) -> _Node:
        node = self._or()
        if self._peek().kind != "end":
            raise self._unexpected(self._peek())
        return node

    def _or(self) -> _Node:
        operands = [self._and()]
        while self._accept("OR"):
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else _Or(tuple(operands))

    def _and(self) -> _Node:
        operands = [self._condition()]
        while self._accept("AND"):
            operands.append(self._condition())
        return operands[0] if len(operands) == 1 else _And(tuple(operands))

    def _condition(self) -> _Node:
        if self._accept("("):
            node = self._or()
            self._expect(")")
            return node
        left = self._operand()
        operator = self._operator()
        return _Comparison(operator, left, self._operand())

    def _operator(self) -> str:
        token = self._advance()
        if token.kind == "operator":
            return token.value
        if token.kind == "keyword" and token.value in ("IN", "HAS", "CONTAINS"):
            return token.value
        if token.kind == "keyword" and token.value == "NOT":
            self._expect("IN")
            return "NOT IN"
        raise self._unexpected(token, "a comparison operator")

    def _operand(self) -> _Literal | _Attribute:
        token = self._advance()
        if token.kind == "literal":
            return _Literal(token.value)
        if token.kind == "name":
            head, *rest = token.value
            # A scope prefix only counts when a path follows it: a bare `task` is an attribute.
            if head.lower() in _SCOPES and rest:
                return _Attribute(head.lower(), tuple(rest))
            return _Attribute(self._default_scope, token.value)
        if token.kind == "[":
            return _Literal(self._list_items())
        raise self._unexpected(token, "a value or attribute")

    def _list_items(self) -> tuple[Any, ...]:
        items: list[Any] = []
        if self._accept("]"):
            return ()
        while not items or self._accept(","):
            token = self._advance()
            if token.kind != "literal":
                raise self._unexpected(token, "a constant inside the list")
            items.append(token.value)
        self._expect("]")
        return tuple(items)

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _advance(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _accept(self, wanted: str) -> bool:
        """Consume the next token if it is the punctuation or keyword ``wanted``."""
        token = self._peek()
        if token.kind == wanted or (token.kind == "keyword" and token.value == wanted):
            self._advance()
            return True
        return False

    def _expect(self, wanted: str) -> None:
        if not self._accept(wanted):
            raise self._unexpected(self._peek(), f"'{wanted}'")

    def _unexpected(self, token: _Token, expected: str | None = None) -> ExpressionError:
        if token.kind == "end":
            detail = "unexpected end of expression"
        else:
            detail = f"unexpected token '{token.text}' at char {token.pos}"
        return _error(self._text, f"{detail}, expected {expected}" if expected else detail)


# --- Public interface ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A compiled TaskRouter expression.

    Attributes:
        text: the expression exactly as written.
        root: the parsed syntax tree; built by :func:`compile_expression`, not by callers.
    """

    text: str
    root: _Node

    def matches(self, task: Mapping | None = None, worker: Mapping | None = None) -> bool:
        """Return whether the expression holds for these task and worker attributes.

        Both mappings are JSON-decoded attributes with ``sid`` already merged in; a missing
        mapping behaves like one without any attributes, so every lookup in it is null.
        """
        return bool(self.root.evaluate({"task": task or {}, "worker": worker or {}}))


def compile_expression(text: str, default_scope: str = "task") -> Expression:
    """Parse ``text`` once into an :class:`Expression`.

    Unprefixed identifiers resolve in ``default_scope``: ``"task"`` for workflow filter
    expressions, ``"worker"`` for task queue ``target_workers`` expressions.

    Raises:
        ExpressionError: the text is empty or malformed.
    """
    if default_scope not in _SCOPES:
        raise ValueError(f"default_scope must be one of {_SCOPES}, not {default_scope!r}")
    if not text.strip():
        raise _error(text, "empty expression")
    try:
        return Expression(text, _Parser(text, default_scope).parse())
    except RecursionError:
        raise _error(text, "expression is nested too deeply") from None

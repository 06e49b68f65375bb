"""A small, safe expression language for the `condition` block: parsed with `ast`, never `eval`.

Allowed: names (the upstream item's fields: score, value, label, zone, state, phase, count), numbers, strings,
True/False/None, comparisons (`<`, `<=`, `==`, `!=`, `>=`, `>`, `in`, `not in`, chained), `and`/`or`/`not`, and
arithmetic (`+ - * / // % **`, unary minus; `**` with an exponent of at most 16). Anything else (calls,
attributes, subscripts, lambdas, comprehensions) is refused when the config is validated, naming what was found.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

NAMES = ("score", "value", "label", "zone", "state", "phase", "count")
MAX_LENGTH = 500

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.GtE: operator.ge,
    ast.Gt: operator.gt,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class ExpressionError(ValueError):
    """An expression that is not allowed or cannot be parsed."""


def compile_expression(text: str, names: tuple[str, ...] = NAMES) -> Callable[[Mapping[str, Any]], bool]:
    """Check `text` and return a function of the names' values that evaluates it (False on a type error)."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"cannot parse {text!r}: {err.msg}") from None
    _check(tree.body, names)

    def evaluate(values: Mapping[str, Any]) -> bool:
        try:
            return bool(_eval(tree.body, values))
        except (TypeError, ZeroDivisionError, OverflowError, ValueError):
            return False  # a missing value (None) compared with a number: the condition does not hold

    return evaluate


def _check(node: ast.AST, names: tuple[str, ...]) -> None:
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, int | float | str | bool | type(None)):
            raise ExpressionError(f"constant {node.value!r} is not allowed")
    elif isinstance(node, ast.Name):
        if node.id not in names and node.id not in ("True", "False", "None"):
            raise ExpressionError(f"unknown name {node.id!r}; use {', '.join(names)}")
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, names)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, names)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.Compare):
        _check(node.left, names)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if type(op) not in _CMPOPS:
                raise ExpressionError(f"comparison {type(op).__name__} is not allowed")
            _check(right, names)
    elif isinstance(node, ast.Tuple | ast.List):
        for e in node.elts:
            _check(e, names)
    else:
        raise ExpressionError(f"{type(node).__name__} is not allowed (only names, numbers, comparisons, and/or/not)")


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _eval(v, values)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = _eval(v, values)
            if result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, values), _eval(node.right, values)
        if isinstance(node.op, ast.Pow) and (not isinstance(right, int | float) or abs(right) > 16):
            raise ValueError("exponent too large")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, values)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_eval(e, values) for e in node.elts)
    raise ExpressionError(f"{type(node).__name__} is not allowed")

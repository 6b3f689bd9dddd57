"""Graph parameters: `params: {h: 64, c: 3}` at the top, `${h/8}` wherever a value is written.

A parameter may be set from the command line like any key (`--set params.h=128`), so one graph
file trains at several sizes. A value written as exactly `${EXPR}` becomes the expression's
number; `${EXPR}` inside a longer string is replaced by its text. EXPR is arithmetic on numbers
and earlier parameters: + - * / // % and parentheses, read by Python's `ast` and evaluated here
(never `eval`). `/` between integers must divide exactly: a layer size of 3.75 is an error,
reported at the line that wrote it, never rounded behind the user's back.
"""
import ast
import difflib
import re

from .yamlio import Node, Seq

PATTERN = re.compile(r"\$\{([^}]*)\}")
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}
MAX_TEXT = 200


class ParamError(Exception):
    pass


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def evaluate(text, values):
    """The value of expression `text` with parameters `values`; ParamError says what is wrong."""
    if len(text) > MAX_TEXT:
        raise ParamError(f"expression longer than {MAX_TEXT} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ParamError(f"'{text}' is not an arithmetic expression (numbers, parameters, + - * / // % "
                         f"and parentheses)") from None
    return _eval(tree.body, text, values)


def _eval(node, text, values):
    if isinstance(node, ast.Constant) and _num(node.value):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in values:
            near = difflib.get_close_matches(node.id, list(values), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ParamError(f"unknown parameter '{node.id}' in ${{{text}}}{hint} "
                             f"Parameters: {', '.join(values) or '(none: add a params: section)'}")
        v = values[node.id]
        if not _num(v):
            raise ParamError(f"parameter '{node.id}' is {v!r}, not a number, in ${{{text}}}")
        return v
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand, text, values)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and (type(node.op) in _OPS or isinstance(node.op, ast.Div)):
        a, b = _eval(node.left, text, values), _eval(node.right, text, values)
        if b == 0 and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            raise ParamError(f"division by zero in ${{{text}}}")
        if isinstance(node.op, ast.Div):
            if isinstance(a, int) and isinstance(b, int):
                if a % b:
                    shown = ", ".join(f"{k}={v}" for k, v in values.items() if k in _names(text))
                    raise ParamError(f"${{{text}}} is {a}/{b} = {a / b:g}, not a whole number"
                                     + (f" (with {shown})" if shown else "")
                                     + "; sizes must divide exactly")
                return a // b
            return a / b
        return _OPS[type(node.op)](a, b)
    raise ParamError(f"'{text}': only numbers, parameters, + - * / // % and parentheses are allowed")


def _names(text):
    try:
        return {n.id for n in ast.walk(ast.parse(text.strip(), mode="eval")) if isinstance(n, ast.Name)}
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()


def _value(s, values):
    whole = PATTERN.fullmatch(s.strip())
    if whole:
        return evaluate(whole.group(1), values)
    def text(m):
        v = evaluate(m.group(1), values)
        return str(v) if isinstance(v, int) else f"{v:g}"
    return PATTERN.sub(text, s)


def resolve(raw, path):
    """(tree with every ${...} replaced, {param: value}, [problem]) for the loaded graph `raw`.

    Lines are kept: the new tree's mappings and lists carry the lines of the old.
    """
    problems = []
    values = {}
    node = raw.get("params")
    if node is not None and not isinstance(node, Node):
        problems.append(f"{path}:{raw.line_of('params')}: 'params' must map names to numbers, e.g. {{h: 64, c: 3}}")
        node = None
    for k, v in (node or {}).items():
        line = node.line_of(k)
        if not isinstance(k, str) or not k.isidentifier():
            problems.append(f"{path}:{line}: parameter name {k!r} must be a name (letters, digits, _)")
            continue
        try:
            v = _value(v, values) if isinstance(v, str) else v
        except ParamError as e:
            problems.append(f"{path}:{line}: params.{k}: {e}")
            continue
        if not _num(v):
            problems.append(f"{path}:{line}: params.{k} must be a number or an expression, got {v!r}")
            continue
        values[k] = v

    def walk(x, line):
        if isinstance(x, Node):
            out = Node((k, walk(v, x.line_of(k))) for k, v in x.items())
            out.line, out.key_lines = x.line, x.key_lines
            return out
        if isinstance(x, Seq):
            out = Seq(walk(v, x.line_of(i)) for i, v in enumerate(x))
            out.line, out.item_lines = x.line, x.item_lines
            return out
        if isinstance(x, str) and "${" in x:
            try:
                return _value(x, values)
            except ParamError as e:
                problems.append(f"{path}:{line}: {e}")
        return x

    body = Node((k, v) for k, v in raw.items() if k != "params")
    body.line, body.key_lines = raw.line, raw.key_lines
    out = walk(body, raw.line)
    return out, values, problems

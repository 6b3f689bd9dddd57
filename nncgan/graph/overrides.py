"""`--set path.to.key=value`: changes to a graph from the command line, strictly checked.

A path walks the graph as written (mapping keys, list items by index:
`networks.Generator.layers.0.size`). The value is read as YAML (`0.001`, `true`, `[1, 28, 28]`)
and is checked as the graph file's value would be: a setting of the schema (nncgan.graph.schema:
a config key, an optimizer key, a solver or schedule setting, a layer's setting) by that
setting's own check, with the file's message; any other key (a name, a dataset path, a
multiplier of a `use:`) must keep the kind it holds (a number for a number). A key the file
leaves out may be set only where the schema knows it, so a typo is an error naming the nearest
real keys, never a silently ignored new key.

Overrides are applied to the loaded tree, which keeps the line of every key, so validation
still points at the line of the file; the run folder gets the overridden graph as text.
"""
import difflib
import os
import re

from ..errors import GraphError
from . import schema
from .yamlio import Node, Seq, dump, load_file, load_value

# Decimal digits, any script's ('٣' is 3), as int() reads them; str.isdigit() also passes '²', which
# int() refuses, and a 5,000-digit index is past int()'s own limit.
INDEX = re.compile(r"\d{1,9}")


def _kind(v):
    if isinstance(v, bool):
        return "true or false"
    if isinstance(v, (int, float)):
        return "a float" if isinstance(v, float) else "an integer"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return "null"


def _fits(held, new):
    """Whether `new` may replace `held` (a key the schema does not describe): the same kind, numbers alike."""
    if held is None or new is None:
        return True  # null means "the default": any value may replace it, and it may be restored
    if isinstance(held, bool) or isinstance(new, bool):
        return isinstance(held, bool) and isinstance(new, bool)
    if isinstance(held, (int, float)):  # a number for a number: validation checks its range
        return isinstance(new, (int, float))
    if isinstance(held, str):
        # A string may become a mapping where the language allows either (w_init: {type:, multiplier:}).
        return isinstance(new, (str, dict))
    if isinstance(held, list):
        return isinstance(new, list)
    if isinstance(held, dict):
        return isinstance(new, (dict, str))
    return False


def _wrap(v, line):
    """Plain YAML data -> Node/Seq carrying `line`, so errors in a set value point at the key's line."""
    if isinstance(v, dict):
        out = Node({k: _wrap(x, line) for k, x in v.items()})
        out.line, out.key_lines = line, {k: line for k in v}
        return out
    if isinstance(v, list):
        out = Seq(_wrap(x, line) for x in v)
        out.line, out.item_lines = line, [line] * len(v)
        return out
    return v


def parse_assignment(text):
    """'a.b.0.c=VALUE' -> (['a', 'b', '0', 'c'], value parsed as YAML, as graph files are read)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise GraphError(f"--set {text[:200]}: expected PATH=VALUE, e.g. --set config.batch_size=32")
    return key.strip().split("."), load_value(value, f"--set {key.strip()[:200]}=...")


def apply(raw, assignments, path="graph"):
    """Apply each 'PATH=VALUE' to the loaded graph `raw` in place; return [(path, old, new)].

    Every problem is collected and raised together as one GraphError.
    """
    applied, problems = [], []
    for text in assignments:
        try:
            applied.append(_apply_one(raw, text, path))
        except GraphError as e:
            problems += e.problems
    if problems:
        raise GraphError(problems)
    return applied


def _apply_one(raw, text, file):
    parts, value = parse_assignment(text)
    node, walked = raw, []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = ".".join(walked) or "the top level"
        if isinstance(node, Seq):
            if not INDEX.fullmatch(part) or int(part) >= len(node):
                raise GraphError(f"{file}:{node.line}: --set {text}: {here} is a list of {len(node)} "
                                 f"item(s); give an index 0..{len(node) - 1}, got '{part}'")
            key = int(part)
        elif isinstance(node, Node):
            key = next((k for k in node if str(k) == part), None)
            if key is None:
                extra = schema.settable(node, walked)
                if last and part in extra:
                    key = part
                else:
                    options = list(dict.fromkeys([str(k) for k in node] + list(extra)))
                    near = difflib.get_close_matches(part, options, n=3, cutoff=0.5)
                    prefix = ".".join(walked + [""])
                    hint = f"; did you mean {' or '.join(repr(prefix + n) for n in near)}?" if near else ""
                    raise GraphError(f"{file}:{node.line}: --set {text}: no key '{part}' in {here}{hint} "
                                     f"Known: {', '.join(options) or '(none)'}")
        else:
            raise GraphError(f"--set {text}: {here} is {_kind(node)} ({node!r}), it has no key '{part}'")
        walked.append(part)
        if last:
            present = key in node if isinstance(node, Node) else True
            found = schema.settings_at(node, walked[:-1]).get(key) if isinstance(node, Node) else None
            held = node[key] if present else (found.setting.default if found else None)
            if found is not None:  # checked as the file's value is, with its message
                problems = schema.validate(found, value)
                if problems:
                    raise GraphError([f"{file}:{node.line_of(key)}: --set {text}: {m}" for m in problems])
            elif not _fits(held, value):
                raise GraphError(f"{file}:{node.line_of(key)}: --set {text}: {'.'.join(walked)} holds "
                                 f"{_kind(held)} ({held!r}), got {_kind(value)} ({value!r})")
            line = node.line_of(key) if present else node.line
            node[key] = _wrap(value, line)
            if isinstance(node, Node) and not present:
                node.key_lines = {**(node.key_lines or {}), key: line}
            return ".".join(walked), held, value
        node = node[key]


def load(path, assignments=(), base_dir=None):
    """Parse the graph at `path` with `assignments` applied; returns (Graph, [(path, old, new)]).

    Without assignments the graph's text is the file as written; with them, it is the
    overridden graph (what a run must keep to resume), headed by the list of overrides.
    """
    from .parse import parse_graph
    path = os.fspath(path)
    if not assignments:
        return parse_graph(path, base_dir=base_dir), []
    raw = load_file(path)
    applied = apply(raw, assignments, path)
    header = [f"# {os.path.basename(path)} with overrides from the command line:"]
    header += [f"#   --set {a}" for a in assignments]
    text = "\n".join(header) + "\n" + dump(raw)
    return parse_graph(path, base_dir=base_dir, raw=raw, text=text), applied


def describe(applied):
    """One line per override, as the CLI prints them."""
    return [f"override {p}: {old!r} -> {new!r}" for p, old, new in applied]

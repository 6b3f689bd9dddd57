"""Safe YAML reading that remembers where every mapping and key came from.

Only plain YAML is accepted (SafeLoader: no tags that build objects); mappings become
`Node`s, dicts that know their own line and the line of each key, so every error can
point at the file and line a user has to edit. Graph files and `--set` values are read by
the same loader, with the same limits (size, nesting, alias expansion).

Scalars are read as YAML 1.1 (PyYAML's SafeLoader) with three changes for graphs:
- floats as ML users write them are numbers: `1e-4`, `1E5`, `.5e-3`, `+2e3` (YAML 1.1 wants a
  dot and a signed exponent, so it reads `1e-4` as text). `.inf`, `-.inf` and `.nan` stay
  YAML's spellings of those floats (the graph's checks refuse them where a finite value is
  needed); bare `inf`/`nan` are text. A literal beyond float range (`1e999`) is refused.
- dates and times (`2024-01-01`) are text, never datetime objects.
- an integer is at most MAX_INT_DIGITS digits, and text holds no lone surrogates (neither
  Python's int parser nor UTF-8 output can take them).
"""
import math
import os
import re

import yaml

from ..errors import GraphError

MAX_GRAPH_BYTES = 256 << 10  # a graph is a description, not data (the NNC sample is 7 KB; pure-Python
                             # YAML reads ~100 KB/s, so this also bounds `check` to seconds)
MAX_DEPTH = 64             # nesting; PyYAML composes recursively and would hit Python's limit
MAX_NODES = 100_000        # values after aliases are expanded (a "billion laughs" stays small in
                           # the file but expands exponentially wherever the graph is walked)
MAX_INT_DIGITS = 30        # a seed or a size needs 10; Python refuses to parse 4,300 or more

FLOAT_TAG = "tag:yaml.org,2002:float"
FLOAT_RE = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[0-9][0-9_]*[eE][-+]?[0-9]+
    |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?)
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_SURROGATE = re.compile("[\ud800-\udfff]")


class Node(dict):
    """A YAML mapping with the source line of itself and of each key (1-based)."""

    line = 0
    key_lines = None
    # Hashable by identity: a mapping written where a name belongs (`network: {a: 1}`) is then
    # simply not found among the names, and reported as such, instead of crashing the lookup.
    __hash__ = object.__hash__

    def line_of(self, key):
        return (self.key_lines or {}).get(key, self.line)


class Seq(list):
    """A YAML sequence with its source line and the line of each item."""

    line = 0
    item_lines = None
    __hash__ = object.__hash__  # as Node's

    def line_of(self, index):
        lines = self.item_lines or []
        return lines[index] if index < len(lines) else self.line


class _LineLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            event = self.peek_event()
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  event.start_mark)
            # A graph needs no explicit tags; PyYAML's own (!!float, !!timestamp, ...) crash with
            # ValueError/IndexError on malformed values, and others would build objects.
            tag = getattr(event, "tag", None)
            if tag not in (None, "!"):
                raise yaml.composer.ComposerError(None, None, f"tags such as '{tag}' are not allowed in a graph",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_scalar(self, node):
        value = super().construct_scalar(node)
        bad = _SURROGATE.search(value)
        if bad:  # only a "\\ud800" escape makes one: the file itself was checked as UTF-8
            raise yaml.constructor.ConstructorError(
                None, None, f"the text holds a lone surrogate (U+{ord(bad.group()):04X}), which is not a "
                            f"character", node.start_mark)
        return value

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if sum(c.isdigit() for c in text) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {sum(c.isdigit() for c in text):,} digits; a graph's integers "
                            f"have at most {MAX_INT_DIGITS}", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node)
        value = super().construct_yaml_float(node)
        if math.isinf(value) and "inf" not in text.lower():
            raise yaml.constructor.ConstructorError(
                None, None, f"the number {text[:40]} is beyond the range of a float (write .inf if "
                            f"infinity is meant)", node.start_mark)
        return value

    def construct_document(self, node):
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        out = Node(super().construct_mapping(node, deep=True))
        out.line = node.start_mark.line + 1
        out.key_lines = seen
        return out

    def construct_sequence(self, node, deep=False):
        out = Seq(super().construct_sequence(node, deep=True))
        out.line = node.start_mark.line + 1
        out.item_lines = [item.start_mark.line + 1 for item in node.value]
        return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _LineLoader.construct_yaml_int)
_LineLoader.add_constructor(FLOAT_TAG, _LineLoader.construct_yaml_float)
# The implicit types: YAML 1.1's, less timestamps, with FLOAT_RE for floats (see the top).
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, FLOAT_RE if tag == FLOAT_TAG else regexp) for tag, regexp in resolvers
            if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "0123456789":  # `1e-4` starts with a digit, which YAML 1.1 floats had already
    assert _LineLoader.yaml_implicit_resolvers[_first][0][0] == FLOAT_TAG


def _check_expansion(root):
    """Refuse documents whose aliases expand past MAX_NODES values, or refer to themselves."""
    sizes, active = {}, set()

    def size(node):
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise yaml.constructor.ConstructorError(None, None, "an alias refers to a value that contains it",
                                                    node.start_mark)
        active.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(size(v) for v in node.value)
        elif isinstance(node, yaml.MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        if n > MAX_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"more than {MAX_NODES} values (counting each alias as what it stands for)",
                node.start_mark)
        sizes[key] = n
        return n
    size(root)


def _load(text, where, line=True):
    """YAML text -> data, by _LineLoader; every error is a GraphError starting with `where`."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 -- _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f"{where}:{mark.line + 1}" if mark and line else str(where)
        raise GraphError(f"{at}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise GraphError(f"{where}: not valid YAML: {e}") from None


def load_value(text, where):
    """One value written on the command line (`--set KEY=VALUE`), read as a graph file is:
    the same loader and limits. Blank text is null. Errors are GraphErrors starting `where`."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_GRAPH_BYTES:
        raise GraphError(f"{where}: the value is larger than {MAX_GRAPH_BYTES} bytes")
    return _load(text, where, line=False) if text.strip() else None


def load_text(text, path):
    """Parse YAML text; errors name `path` and the line."""
    if len(text.encode("utf-8", "replace")) > MAX_GRAPH_BYTES:
        raise GraphError(f"{path}: the graph file is larger than {MAX_GRAPH_BYTES} bytes")
    data = _load(text, path)
    if not isinstance(data, Node):
        raise GraphError(f"{path}:1: a graph file must be a YAML mapping (networks:, optimizers:, ...)")
    return data


def load_file(path):
    path = os.fspath(path)
    try:
        from ..safeio import open_regular
        with open_regular(path) as f:  # a FIFO or device given as the graph never blocks
            raw = f.read(MAX_GRAPH_BYTES + 1)
    except OSError as e:
        raise GraphError(f"{path}: cannot read the graph file: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GraphError(f"{path}: the graph file is not UTF-8 text (byte {e.start})") from None
    return load_text(text, path)



class _Flow(dict):
    """A mapping written on one line: a layer entry reads like the hand-written graphs."""


def plain(v, flow=False):
    """Node/Seq (and tuples) -> plain dicts and lists that yaml.safe_dump writes."""
    if isinstance(v, dict):
        out = {k: plain(x) for k, x in v.items()}
        return _Flow(out) if flow else out
    if isinstance(v, (list, tuple)):
        return [plain(x, flow=True) for x in v]
    return v


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # list items indented under their key


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping(
    "tag:yaml.org,2002:map", v.items(), flow_style=True))


def dump(data):
    """YAML text for a graph: keys in their order, list items and innermost collections on one line."""
    return yaml.dump(plain(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     allow_unicode=True, width=4096)

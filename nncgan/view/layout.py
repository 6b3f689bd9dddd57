"""What each layer box of `nncgan view` says, and where boxes and links go.

Everything shown comes from the validated graph (shapes, scopes, multipliers as `nncgan check`
reads them) and the layer registry (which settings a type has, their defaults); nothing is
recomputed. Each network is a column, its layers top to bottom in build order; a link from the
layer just above is a short arrow, any other link (a skip connection, a second input, a loss
target) runs down a lane at the column's right, one lane per source layer.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..layers import get as get_layer_type

BOX_W = 270
BOX_H = 48          # a box of one line of settings; each further line adds LINE
LINE = 13
MAX_DETAIL_LINES = 3
TEXT_CHARS = 44     # what fits on a line of a box at the font size the page's CSS sets
GAP = 16            # vertical space between boxes
HEADER = 64         # room for the network's name and what trains/runs it
LANE = 8            # spacing of skip-link lanes
COL_GAP = 36
MARGIN = 16
INIT_KEYS = ("w_init", "b_init")


@dataclass
class Box:
    network: str
    layer: object                       # model.Layer
    x: float
    y: float
    kind: str                           # input, target, loss, param, plain
    title: str                          # 'Name : Type'
    detail: List[str]                   # key settings, wrapped into lines
    shape: str
    mult: str                           # '', 'x0 frozen', 'W x1 b x0', 'x0.5'
    frozen: bool
    tooltip: str
    scope: Optional[str] = None         # set for layers holding parameters
    h: float = BOX_H
    output_alias: List[str] = field(default_factory=list)


@dataclass
class Link:
    src: Box
    dst: Box
    lane: Optional[int]                 # None: straight down from the box above
    slot: int = 0                       # which of dst's side inputs (spreads arrowheads)
    slots: int = 1
    is_target: bool = False


@dataclass
class Column:
    name: str
    x: float
    width: float
    boxes: List[Box]
    links: List[Link]
    lanes: int
    notes: List[str]                    # 'trained by ...', 'executor ...'
    bottom: float


def _fmt(v):
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return ",".join(_fmt(x) for x in v)
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def key_settings(layer):
    """The settings worth a glance: required ones and those set away from the registry default."""
    lt = get_layer_type(layer.type)
    parts = []
    for key, spec in lt.settings.items():
        v = layer.settings.get(key)
        if v is None or key in INIT_KEYS or (lt.is_input and key in ("size", "dataset", "generator", "multiplier")):
            continue
        if spec.required or v != spec.default:
            parts.append(f"{key} {_fmt(v)}")
    return parts


def source_text(settings):
    """An Input's (or a loss target's) source: 'dataset y' or 'Uniform x1'."""
    if settings.get("dataset"):
        return f"dataset {settings['dataset']}"
    return f"{settings.get('generator')} \u00d7{_fmt(settings.get('multiplier', 1.0))}"


def is_implicit_target(layer, net):
    """The Input that validation made from a loss's `target: {...}`."""
    return layer.target_of is not None


def mult_text(layer):
    """'' when every parameter learns at x1; '×0 frozen' when none learns; else each multiplier."""
    if not layer.lr_mult:
        return "", False
    values = set(layer.lr_mult.values())
    if values == {0.0}:
        return "\u00d70 frozen", True
    if values == {1.0}:
        return "", False
    if len(values) == 1:
        return f"\u00d7{_fmt(values.pop())}", False
    return " ".join(f"{p}\u00d7{_fmt(m)}" for p, m in layer.lr_mult.items()), False


def _tooltip(layer, lt):
    lines = [f"{layer.name} ({layer.type})", f"output {shape_text(layer.shape)}"]
    if layer.inputs:
        lines.append("inputs " + ", ".join(layer.inputs))
    for k, v in layer.settings.items():
        if v is not None:
            lines.append(f"{k}: {_fmt(v)}")
    if lt.params:
        lines.append(f"scope {layer.scope}")
    if layer.lr_mult:
        lines.append("lr_mult " + ", ".join(f"{p} {_fmt(m)}" for p, m in layer.lr_mult.items()))
    lines.append(f"defined at {layer.where.file}:{layer.where.line}")
    return "\n".join(lines)


def wrap(parts, width=TEXT_CHARS, most=MAX_DETAIL_LINES):
    """Setting texts joined by ', ' into lines of at most `width` characters (an over-long one is
    clipped by the drawing); at most `most` lines, the last ending in '…' when some were left out."""
    lines = []
    for p in parts:
        if lines and len(lines[-1]) + 2 + len(p) <= width:
            lines[-1] += ", " + p
        else:
            lines.append(p)
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] += " \u2026"
    return lines


def _box(net, layer, x, y):
    lt = get_layer_type(layer.type)
    mult, frozen = mult_text(layer)
    if lt.is_input:
        kind = "target" if is_implicit_target(layer, net) else "input"
        detail = [source_text(layer.settings)]
    elif lt.is_loss:
        kind = "loss"
        target = net.layer(layer.inputs[1]) if len(layer.inputs) > 1 else None
        if target is not None and is_implicit_target(target, net):
            what = source_text(target.settings)
        else:
            what = layer.inputs[1] if len(layer.inputs) > 1 else "?"
        detail = wrap([f"target {what}", f"weight {_fmt(layer.settings.get('weight', 1.0))}"])
    else:
        kind = "param" if lt.params else "plain"
        detail = wrap(key_settings(layer))
    return Box(net.name, layer, x, y, kind, f"{layer.name} : {layer.type}", detail,
               shape_text(layer.shape), mult, frozen, _tooltip(layer, lt),
               scope=layer.scope if lt.params else None,
               output_alias=[a for a, n in net.outputs.items() if n == layer.name],
               h=BOX_H + LINE * max(0, len(detail) - 1))


def _assign_lanes(spans):
    """Interval colouring: spans (first row, last row) -> lane indices, overlapping spans apart."""
    lanes_end, out = [], []
    for lo, hi in spans:
        for i, end in enumerate(lanes_end):
            if end < lo:
                lanes_end[i] = hi
                out.append(i)
                break
        else:
            lanes_end.append(hi)
            out.append(len(lanes_end) - 1)
    return out


def layout_network(graph, net, x):
    boxes, y = [], HEADER
    for layer in net.layers:
        boxes.append(_box(net, layer, x, y))
        y += boxes[-1].h + GAP
    by_name = {b.layer.name: (i, b) for i, b in enumerate(boxes)}
    straight, side = [], {}                     # side: src row -> [(dst row, input index)]
    for i, b in enumerate(boxes):
        for k, name in enumerate(b.layer.inputs):
            j, src = by_name[name]
            if j == i - 1 and k == 0:
                straight.append(Link(src, b, None))
            else:
                side.setdefault(j, []).append((i, k))
    order = sorted(side)
    lanes = _assign_lanes([(j, max(i for i, _ in side[j])) for j in order])
    links = list(straight)
    incoming = {}
    for j, lane in zip(order, lanes):
        for i, k in side[j]:
            dst = boxes[i]
            link = Link(boxes[j], dst, lane, is_target=dst.kind == "loss" and k == 1)
            incoming.setdefault(i, []).append(link)
            links.append(link)
    for group in incoming.values():
        for s, link in enumerate(group):
            link.slot, link.slots = s, len(group)
    n_lanes = max(lanes, default=-1) + 1
    notes = []
    for o in graph.optimizers:
        if o.network == net.name:
            notes.append(f"trained by optimizer {o.name} ({o.solver})")
    for e in graph.executors.values():
        if e.network == net.name:
            notes.append(f"executor {e.name}: output {e.output}")
    width = BOX_W + (2 * LANE + n_lanes * LANE if n_lanes else 0)
    return Column(net.name, x, width, boxes, links, n_lanes, notes, y)


def layout(graph):
    """Columns for every network, left to right in the order the file lists them; (columns, w, h)."""
    cols, x = [], MARGIN
    for net in graph.networks.values():
        col = layout_network(graph, net, x)
        cols.append(col)
        x += col.width + COL_GAP
    height = max((c.bottom for c in cols), default=HEADER) + MARGIN
    return cols, x - COL_GAP + MARGIN, height


def scope_users(graph):
    """ParameterScope -> networks whose layers hold it, in file order."""
    users: Dict[str, List[str]] = {}
    for net in graph.networks.values():
        for l in net.layers:
            if get_layer_type(l.type).params and net.name not in users.setdefault(l.scope, []):
                users[l.scope].append(net.name)
    return users


def scope_colours(scopes) -> Dict[str, Tuple[int, int, int]]:
    """A distinct hue per scope (golden-angle steps), as HSL triples."""
    return {s: (int(i * 137.508) % 360, 62, 52) for i, s in enumerate(scopes)}

"""The graph as one inline SVG: a column of layer boxes per network, links, scope colours.

Every piece of text comes from the user's graph file, so all of it is escaped. Each layer box
is `<g class="layer ..." data-layer="Network/Layer" data-scope="...">`, which the page's script
and the tests find it by.
"""
from html import escape

from . import layout as L

CHAR_W = 6.6       # a bold character's width in pixels, near enough


def _e(s):
    return escape(str(s), quote=True)


def _clip(s, n=L.TEXT_CHARS):
    if n <= 1:
        return "\u2026" if s and n == 1 else ""
    return s if len(s) <= n else s[:n - 1] + "\u2026"


def _hsl(c, light=None):
    h, s, l = c
    return f"hsl({h},{s}%,{light if light is not None else l}%)"


def _box(b, colours, users):
    x, y = b.x, b.y
    classes = ["layer", b.kind] + (["frozen"] if b.frozen else [])
    attrs = f'class="{" ".join(classes)}" data-layer="{_e(b.network)}/{_e(b.layer.name)}"'
    if b.scope is not None:
        attrs += f' data-scope="{_e(b.scope)}"'
    out = [f"<g {attrs}>", f"<title>{_e(b.tooltip)}</title>"]
    out.append(f'<rect class="box" x="{x}" y="{y}" width="{L.BOX_W}" height="{b.h}" rx="5"/>')
    if b.frozen:
        out.append(f'<rect class="hatch" x="{x}" y="{y}" width="{L.BOX_W}" height="{b.h}" rx="5"/>')
    room = L.BOX_W - 18
    if b.scope is not None:
        c = colours[b.scope]
        out.append(f'<rect class="scope-bar" x="{x}" y="{y}" width="7" height="{b.h}" rx="3" '
                   f'fill="{_hsl(c)}"/>')
        if b.scope != b.layer.name:   # the scope is named only where the layer's name does not say it
            badge = _clip(b.scope, 16)
            bw = 6 * len(badge) + 10
            room -= bw + 6
            out.append(f'<rect class="scope-badge" x="{x + L.BOX_W - bw - 4}" y="{y + 3}" width="{bw}" '
                       f'height="13" rx="6" fill="{_hsl(c, 88)}" stroke="{_hsl(c)}"/>')
            out.append(f'<text class="badge-text" x="{x + L.BOX_W - bw / 2 - 4}" y="{y + 13}" '
                       f'text-anchor="middle">{_e(badge)}</text>')
    tx = x + 12
    name = _clip(b.layer.name, max(4, int(room / CHAR_W) - 3))
    kind = _clip(" : " + b.layer.type, max(0, int(room / CHAR_W) - len(name)))
    out.append(f'<text class="name" x="{tx}" y="{y + 14}">{_e(name)}<tspan class="type">{_e(kind)}</tspan></text>')
    for i, line in enumerate(b.detail):
        out.append(f'<text class="detail" x="{tx}" y="{y + 28 + L.LINE * i}">{_e(_clip(line))}</text>')
    shape = "\u2192 " + b.shape + ("  [" + ", ".join(b.output_alias) + "]" if b.output_alias else "")
    out.append(f'<text class="shape" x="{tx}" y="{y + b.h - 6}">{_e(_clip(shape, 30))}</text>')
    if b.mult:
        out.append(f'<text class="mult" x="{x + L.BOX_W - 6}" y="{y + b.h - 6}" text-anchor="end">{_e(b.mult)}</text>')
    out.append("</g>")
    return "\n".join(out)


def _link(k, col):
    s, d = k.src, k.dst
    data = f'data-from="{_e(s.layer.name)}" data-to="{_e(d.layer.name)}"'
    cls = "link target-link" if k.is_target else "link"
    if k.lane is None:
        cx = s.x + L.BOX_W / 2
        return f'<path class="{cls}" {data} d="M{cx},{s.y + s.h} V{d.y - 1}" marker-end="url(#arrow)"/>'
    right = s.x + L.BOX_W
    lane_x = right + L.LANE * (k.lane + 1.5)
    y0 = s.y + s.h / 2
    y1 = d.y + d.h * (k.slot + 1) / (k.slots + 1)
    return (f'<path class="{cls}" {data} d="M{right},{y0} H{lane_x} V{y1} H{right + 1}" '
            f'marker-end="url(#arrow)"/>')


DEFS = """<defs>
<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
<path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker>
<pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<line x1="0" y1="0" x2="0" y2="8" class="hatch-line"/></pattern>
</defs>"""


def graph_svg(graph):
    """The whole graph as an <svg> element (a string), sized to fit every column."""
    cols, width, height = L.layout(graph)
    users = L.scope_users(graph)
    colours = L.scope_colours(users)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="graph {_e(graph.name)}">', DEFS]
    for col in cols:
        parts.append(f'<g class="network" data-network="{_e(col.name)}">')
        parts.append(f'<text class="net-name" x="{col.x}" y="{L.MARGIN + 8}">{_e(_clip(col.name, int(col.width / 9)))}</text>')
        for i, note in enumerate(col.notes[:2]):
            parts.append(f'<text class="net-note" x="{col.x}" y="{L.MARGIN + 24 + 13 * i}">{_e(_clip(note, int(col.width / 5.8)))}</text>')
        parts += [_link(k, col) for k in col.links]
        parts += [_box(b, colours, users) for b in col.boxes]
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)

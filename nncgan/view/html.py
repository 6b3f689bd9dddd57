"""`nncgan view`: the graph picture as one self-contained HTML page (inline SVG, CSS and script)."""
import os
from html import escape
from pathlib import Path

from . import layout as L
from .svg import graph_svg

CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
.facts { color: #555; margin: 0 0 10px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 6px 0 12px; padding: 0; list-style: none; }
.legend li { cursor: default; } .legend .sw { display: inline-block; width: 11px; height: 11px;
  border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.keys span { display: inline-block; margin-right: 14px; }
.keys i { display: inline-block; width: 22px; height: 11px; border: 1px solid #777; vertical-align: -1px;
  margin-right: 4px; }
.scroll { overflow: auto; border: 1px solid #ddd; background: #fff; }
svg.graph text { font-size: 11px; fill: #222; }
svg.graph .net-name { font-size: 15px; font-weight: 600; }
svg.graph .net-note { fill: #666; }
svg.graph .name { font-weight: 600; } svg.graph .type { font-weight: 400; fill: #555; }
svg.graph .detail { fill: #444; } svg.graph .shape { fill: #225; font-family: ui-monospace, monospace; }
svg.graph .mult { fill: #a00; font-weight: 600; }
svg.graph .badge-text { font-size: 9px; }
svg.graph .box { fill: #fff; stroke: #888; }
svg.graph .input .box { fill: #e8f4ff; stroke: #4a8ad4; }
svg.graph .target .box { fill: #f3f3f3; stroke: #999; stroke-dasharray: 4 3; }
svg.graph .loss .box { fill: #ffecec; stroke: #d04a4a; stroke-width: 1.5; }
svg.graph .frozen .box { fill: #ececec; stroke: #aaa; stroke-dasharray: 5 3; }
svg.graph .frozen text { fill: #888; } svg.graph .frozen .mult { fill: #a00; }
svg.graph .hatch { fill: url(#hatch); pointer-events: none; }
svg.graph .hatch-line { stroke: #d4d4d4; stroke-width: 3; }
svg.graph .link { fill: none; stroke: #8a8a8a; stroke-width: 1.2; }
svg.graph .target-link { stroke: #d04a4a; stroke-dasharray: 3 2; }
svg.graph .arrowhead { fill: #777; }
svg.graph .hl .box { stroke: #000; stroke-width: 3; }
"""

# Hovering a box (or a legend entry) outlines every box of that ParameterScope, in every network.
SCRIPT = """
(function () {
  var boxes = document.querySelectorAll('[data-scope]');
  function mark(scope, on) {
    boxes.forEach(function (b) { if (b.getAttribute('data-scope') === scope) b.classList.toggle('hl', on); });
  }
  boxes.forEach(function (b) {
    b.addEventListener('mouseenter', function () { mark(b.getAttribute('data-scope'), true); });
    b.addEventListener('mouseleave', function () { mark(b.getAttribute('data-scope'), false); });
  });
  document.documentElement.setAttribute('data-view-ready', String(document.querySelectorAll('[data-layer]').length));
  window.addEventListener('load', function () {   // how many pictures decoded: "shown/all"
    var imgs = Array.prototype.slice.call(document.images);
    var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    document.documentElement.setAttribute('data-images', ok + '/' + imgs.length);
  });
})();
"""


def _e(s):
    return escape(str(s), quote=True)


def legend(graph):
    """HTML: each ParameterScope's colour and the networks that hold it, shared ones first."""
    users = L.scope_users(graph)
    colours = L.scope_colours(users)
    items = []
    for scope, nets in sorted(users.items(), key=lambda kv: (-len(kv[1]), list(users).index(kv[0]))):
        h, s, l = colours[scope]
        items.append(f'<li data-scope="{_e(scope)}"><span class="sw" style="background:hsl({h},{s}%,{l}%)"></span>'
                     f'{_e(scope)} <small>({_e(", ".join(nets))})</small></li>')
    keys = ('<p class="keys"><span><i style="background:#e8f4ff;border-color:#4a8ad4"></i>Input</span>'
            '<span><i style="background:#f3f3f3;border-style:dashed"></i>loss target</span>'
            '<span><i style="background:#ffecec;border-color:#d04a4a"></i>loss</span>'
            '<span><i style="background:repeating-linear-gradient(45deg,#ececec 0 3px,#d4d4d4 3px 6px)"></i>'
            'frozen (every LRateMultiplier 0, shown \u00d70)</span>'
            '<span>colour bar and badge: ParameterScope (one set of parameters, shared across networks)</span></p>')
    return keys + '<ul class="legend">' + "".join(items) + "</ul>"


def graph_section(graph):
    """The picture with its legend: a fragment that `nncgan report` embeds too."""
    return legend(graph) + f'<div class="scroll">{graph_svg(graph)}</div>'


def default_out(graph_path):
    """GRAPH.html beside the graph file; here when that folder cannot be written (an installed sample)."""
    p = Path(graph_path)
    name = p.name[:-len(".yaml")] if p.name.endswith(".yaml") else p.stem
    return p.with_name(f"{name}.html") if os.access(p.parent, os.W_OK) else Path(f"{name}.html")


def params_table(graph):
    """Parameters per network, trainable and frozen, and the graph's total (nncgan check's numbers)."""
    from ..param_counts import count
    c = count(graph)
    rows = "".join(f'<tr data-network="{_e(n)}"><td>{_e(n)}</td><td>{x.total:,}</td><td>{x.trainable:,}</td>'
                   f"<td>{x.frozen:,}</td></tr>" for n, x in c.networks.items())
    rows += (f'<tr data-network=""><th>graph</th><th>{c.total:,}</th><th>{c.trained:,}</th>'
             f"<th>{c.total - c.trained:,}</th></tr>")
    return ('<h2>Parameters</h2><table class="params"><tr><th>network</th><th>total</th><th>trainable</th>'
            f"<th>frozen</th></tr>{rows}</table>")


def page(title, body, css=""):
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}{css}</style></head>\n<body>\n{body}\n"
            f"<script>{SCRIPT}</script>\n</body></html>\n")


def view_page(graph, applied=()):
    ds = graph.dataset
    facts = (f"{_e(graph.path)} \u00b7 dataset {_e(ds.name)}: "
             + ", ".join(f"{_e(v)} {_e(L.shape_text(s))}" for v, s in ds.variables.items())
             + f" \u00b7 batch {graph.config.batch_size}, max epoch {graph.config.max_epoch}")
    over = "".join(f"<li>{_e(a)}</li>" for a in applied)
    body = (f"<h1>{_e(graph.name)}</h1><p class=\"facts\">{facts}</p>"
            + (f"<p>overrides:</p><ul>{over}</ul>" if over else "")
            + graph_section(graph) + params_table(graph))
    return page(f"{graph.name} \u2014 nncgan view", body)


def write_view(graph_file, sets=(), out=None, say=print):
    """`nncgan view`: the graph (with its --set overrides) as a page at `out` (default: default_out)."""
    from .. import safeio
    from ..graph.overrides import describe, load
    graph, applied = load(graph_file, sets)
    out = Path(out) if out else default_out(graph_file)
    safeio.write_text(out, view_page(graph, describe(applied)))
    say(f"nncgan: the graph '{graph.name}' as a picture -> {out}")
    return out

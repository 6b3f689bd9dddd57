"""`nncgan report RUN`: one self-contained HTML page of a run.

Learning curves (drawn from monitor/*.series.txt by matplotlib, as inline SVG), the mean loss of
every epoch (the saved state), the sample tile of every epoch and what `infer` drew (PNG data
URIs), eval/eval.json as tables, run.json, and the graph picture of `nncgan view`. Every piece
is optional: a run with nothing yet still gets a page saying what is missing.
"""
import base64
import io
import json
from html import escape
from pathlib import Path

from .. import runs, safeio
from ..errors import NncganError
from ..train import progress
from .html import graph_section, page

EVAL_FILE = Path("eval") / "eval.json"
MAX_INFER = 24
REPORT_CSS = """
table.kv { border-collapse: collapse; margin: 4px 0 8px; background: #fff; }
table.kv td, table.kv th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
table.kv td.num { text-align: right; font-family: ui-monospace, monospace; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.tiles figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: 4px; }
.tiles img { image-rendering: pixelated; display: block; }
figcaption { font-size: 12px; color: #555; text-align: center; }
.missing { color: #888; font-style: italic; }
.older { color: #b35900; font-weight: bold; display: block; }
"""


def _e(s):
    return escape(str(s), quote=True)


def data_uri(data):
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img(path, alt, fit):
    """An <img> of the PNG inlined, enlarged by a whole factor (up to 4) towards `fit` pixels wide.

    A tile that cannot be read (truncated, damaged, not a regular file) is a note, not an error."""
    from PIL import Image
    try:
        data = safeio.read_bytes(path, limit=64 << 20)
        with Image.open(io.BytesIO(data)) as im:
            w = im.width
            im.load()  # decodes it all: a truncated PNG fails here
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return f'<p class="missing">{_e(Path(path).name)} cannot be read: {_e(safeio.reason(e))}</p>'
    zoom = max(1, min(4, fit // max(w, 1)))
    return f'<img alt="{_e(alt)}" width="{w * zoom}" src="{data_uri(data)}">'


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def value_html(v):
    """A JSON value as HTML: mappings as nested tables, numbers to 6 significant digits."""
    if isinstance(v, dict):
        return table(v)
    if isinstance(v, list):
        return _e(", ".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in v))
    if isinstance(v, float):
        return _e(f"{v:.6g}")
    return _e(v)


def table(mapping, cls="kv"):
    rows = "".join(f'<tr data-key="{_e(k)}"><th>{_e(k)}</th>'
                   f'<td{" class=num" if _num(v) else ""}>{value_html(v)}</td></tr>' for k, v in mapping.items())
    return f'<table class="{cls}">{rows}</table>'


def _svg(fig):
    """A matplotlib figure as inline SVG text (closed after)."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def curves_svg(run, state):
    """The learning curve (learning_curve.png's figure) as an inline SVG, or None."""
    order = list(((state or {}).get("losses") or {}).get(str((state or {}).get("epoch")), {}))
    fig = progress.learning_curve(run, _per_epoch(state), order)
    return _svg(fig) if fig is not None else None


def scores_svg(run):
    """The per-epoch scores training wrote (monitor/eval-*.series.txt), one small chart each (or None)."""
    paths = sorted((Path(run) / progress.MONITOR_DIR).glob("eval-*.series.txt"))
    series = {p.name[len("eval-"):-len(".series.txt")]: progress.read_series(p) for p in paths}
    series = {k: v for k, v in series.items() if len(v)}
    if not series:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = min(3, len(series))
    rows = -(-len(series) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), dpi=100, squeeze=False)
    for ax, (name, s) in zip(axes.flat, series.items()):
        ax.plot(s[:, 0], s[:, 1], marker=".", gid=f"score-{name}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(series):]:
        ax.axis("off")
    return _svg(fig)


def _older(epoch, last):
    """' (epoch 2: older than the run's last epoch, 4)' when `epoch` is before `last`."""
    try:
        epoch = int(str(epoch).replace("epoch_", ""))
    except ValueError:
        return ""
    return f" (epoch {epoch}: older than the run's last epoch, {last})" if last and epoch < last else ""


def _per_epoch(state):
    try:
        per = float(state["iteration"]) / float(state["epoch"])
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return None
    return per if per > 0 and per == per and per != float("inf") else None


def _epoch_losses(state):
    losses = (state or {}).get("losses") or {}
    # a damaged state (wrong types) shows what is well-formed
    losses = {e: v for e, v in losses.items() if str(e).isdigit() and isinstance(v, dict)} \
        if isinstance(losses, dict) else {}
    if not losses:
        return ""
    names = list(next(iter(losses.values())))

    def cell(v):
        return f"{v:.4f}" if _num(v) else _e(v)
    seconds = state.get("seconds") if isinstance(state.get("seconds"), dict) else {}
    head = "<tr><th>epoch</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "<th>time</th></tr>"
    rows = "".join(f'<tr data-epoch="{_e(e)}"><td class="num">{_e(e)}</td>'
                   + "".join(f'<td class="num">{cell(v.get(n, float("nan")))}</td>' for n in names)
                   + f'<td class="num duration">{_e(progress.duration(seconds[e])) if _num(seconds.get(e)) else "-"}</td></tr>'
                   for e, v in sorted(losses.items(), key=lambda kv: int(kv[0])))
    return f'<p>mean loss of each epoch</p><table class="kv losses">{head}{rows}</table>'


def _tiles(run):
    paths = sorted(p for p in (Path(run) / progress.SAMPLES_DIR).glob("epoch_*.png") if p.stem[6:].isdigit())
    if not paths:
        return '<p class="missing">no epoch tiles yet (samples/epoch_NNNN.png)</p>'
    epochs = [int(p.stem[6:]) for p in paths]
    figs = "".join(f'<figure data-epoch="{e}">{img(p, f"epoch {e}", 300)}<figcaption>epoch {e}</figcaption></figure>'
                   for e, p in zip(epochs, paths))
    return f'<div class="tiles">{figs}</div>'


def _png_epoch(path):
    from PIL import Image
    try:  # a damaged picture has no epoch to tell
        with safeio.open_regular(path) as f, Image.open(f) as im:
            return im.info.get("epoch")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _infer(run, last=None):
    paths = sorted((p for p in (Path(run) / "infer").glob("*.png") if safeio.is_regular(p)),
                   key=lambda p: p.stat().st_mtime)[-MAX_INFER:]
    if not paths:
        return ""
    figs = "".join(f'<figure>{img(p, p.name, 640)}<figcaption>{_e(p.name)}'
                   + (f'<span class="older">{_e(old)}</span>' if (old := _older(_png_epoch(p), last)) else "")
                   + "</figcaption></figure>" for p in paths)
    return f'<h2>Drawn by nncgan infer</h2><div class="tiles infer">{figs}</div>'


def _eval(run, last=None):
    """eval.json as `nncgan eval` prints it (every key in a folded table), marked when older than the run."""
    path = Path(run) / EVAL_FILE
    if not path.is_file():
        return f'<p class="missing">no {_e(EVAL_FILE)} (nncgan eval writes it)</p>'
    try:
        data = json.loads(safeio.read_text(path, limit=16 << 20))
    except (OSError, ValueError) as e:
        return f'<p class="missing">{_e(path)} cannot be read: {_e(e)}</p>'
    if not isinstance(data, dict):
        return f'<div class="eval">{value_html(data)}</div>'
    old = _older(data.get("epoch"), last) if data.get("source") == "generator" else ""
    note = f'<p class="older">nncgan eval of{_e(old)}</p>' if old else ""
    try:
        from ..eval.report import table as eval_table
        text = f"<pre>{_e(eval_table(data))}</pre>"
    except (KeyError, TypeError, ValueError):  # an eval.json of another version: its keys only
        text = ""
    return (f'<div class="eval">{note}{text}<details><summary>every number of {_e(EVAL_FILE)}</summary>'
            f"{table(data)}</details></div>")


def _graph(run):
    try:
        graph = run.graph()
    except NncganError as e:
        return f'<p class="missing">the run\'s graph.yaml cannot be drawn: {_e(e)}</p>'
    return graph_section(graph)


def report_page(run):
    run = runs.Run(run)
    info = run.info
    state = run.state()
    curves = curves_svg(run, state)
    scores = scores_svg(run)
    last = (state or {}).get("epoch")
    body = [f"<h1>{_e(run.name)}</h1>",
            f'<p class="facts">graph {_e(info.get("name", "?"))} \u00b7 status {_e(info.get("status", "?"))}'
            f' \u00b7 epoch {_e((state or {}).get("epoch", 0))}</p>',
            *([f'<p class="missing">{_e(runs.RUN_INFO)} is damaged: ' + _e(", ".join(
                f"{k} = {v!r}" for k, v in runs.damaged_fields(info).items())) + " (ignored)</p>"]
              if runs.damaged_fields(info) else []),
            "<h2>Learning curves</h2>",
            f'<div class="curves">{curves}</div>' if curves else '<p class="missing">no loss series yet</p>',
            _epoch_losses(state),
            *(["<h2>Scores of every epoch</h2>", f'<div class="scores">{scores}</div>'] if scores else []),
            "<h2>Samples of every epoch</h2>", _tiles(run),
            _infer(run, last),
            "<h2>Evaluation</h2>", _eval(run, last),
            "<h2>Run</h2>", table(info),
            "<h2>Graph</h2>", _graph(run)]
    return page(f"{run.name} \u2014 nncgan report", "\n".join(body), REPORT_CSS)


def write_report(run, out=None):
    out = Path(out) if out else Path(run) / "report.html"
    safeio.check_target(out)  # a folder or device at --out: refused before the page is drawn
    return safeio.write_text(out, report_page(run))


def report(run=None, runs_dir="runs", out=None, say=print):
    """`nncgan report`: the page of run `run` (default: the latest GAN run, said); returns its path."""
    run = runs.chosen(run, runs_dir, "reporting", how="RUN", say=say)
    out = write_report(run, out)
    say(f"nncgan: report of {run} -> {out}")
    return out

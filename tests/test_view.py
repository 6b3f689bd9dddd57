"""nncgan view: every layer of every network drawn, with its shape, scope colour, ×0 when frozen,
losses with their targets; text escaped; the page loads in a real browser without errors."""
import re
import textwrap
from html import unescape

import pytest

from nncgan import cli
from nncgan.graph.parse import parse_graph
from nncgan.layers import get as get_layer_type
from nncgan.view import layout
from nncgan.view.html import view_page

from browser import elements, load
from conftest import CGAN

ODD = textwrap.dedent("""\
    nncgan: 1
    name: odd
    dataset: {name: mnist}
    config: {batch_size: 4, max_epoch: 1, seed: 1}
    blocks:
      d:
        inputs: [img]
        layers:
          - {name: "A<b>&\\"'", type: Affine, input: img, out_shape: 8, lr_mult: {W: 1, b: 0}}
          - {name: S, type: Sigmoid}
    networks:
      N1:
        layers:
          - {name: X, type: Input, size: [1, 28, 28], dataset: x}
          - {name: Y, type: Input, size: 8, generator: Normal, multiplier: 0.5}
          - {use: d, inputs: {img: X}}
          - {name: L1, type: SquaredError, input: S, target: Y, weight: 0.5}
      N2:
        layers:
          - {name: X, type: Input, size: [1, 28, 28], dataset: x}
          - {use: d, inputs: {img: X}, prefix: p_, lr_mult: 0.5}
          - {use: d, inputs: {img: X}, prefix: q_, scope_prefix: q_, lr_mult: 0}
          - {name: L2, type: BinaryCrossEntropy, input: p_S, target: {generator: Constant, multiplier: 0}}
    optimizers:
      N1: {network: N1, solver: {type: Adam}}
      N2: {network: N2, solver: {type: Adam}}
    executors:
      E: {network: N1, output: S}
    """)


def boxes(html):
    return {el["attrs"]["data-layer"]: el for el in elements(html, "g", "data-layer")}


def frozen(layer):
    return bool(layer.lr_mult) and not any(layer.lr_mult.values())


def check_every_layer_drawn(graph, html):
    found = boxes(html)
    want = {f"{n.name}/{l.name}": l for n in graph.networks.values() for l in n.layers}
    assert set(found) == set(want)
    for key, layer in want.items():
        el = found[key]
        text, classes = el["text"], el["attrs"]["class"].split()
        assert layout.shape_text(layer.shape) in text, key          # its output shape
        assert layer.type in text, key
        assert ("frozen" in classes) == frozen(layer), key
        assert ("\u00d70 frozen" in text) == frozen(layer), key
        assert el["attrs"].get("data-scope") == (layer.scope if get_layer_type(layer.type).params else None)
    return found


def scope_fills(html):
    """data-scope -> the colours of its boxes' scope bars."""
    fills = {}
    for el in re.finditer(r'data-scope="([^"]*)">.*?class="scope-bar"[^>]*fill="([^"]+)"', html, re.S):
        fills.setdefault(unescape(el.group(1)), set()).add(el.group(2))
    return fills


def test_cgan_picture_shows_every_layer_shape_scope_and_frozen_half(tmp_path, capsys):
    out = tmp_path / "g.html"
    assert cli.main(["view", str(CGAN), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    graph = parse_graph(CGAN)
    found = check_every_layer_drawn(graph, html)
    # DiscriminatorFake's generator half and Generator's discriminator half are the frozen ones
    assert "frozen" in found["DiscriminatorFake/Deconvolution"]["attrs"]["class"]
    assert "frozen" not in found["DiscriminatorFake/Convolution_3"]["attrs"]["class"]
    assert "frozen" in found["Generator/Affine_4"]["attrs"]["class"]
    # a shared scope has one colour in every network, and different scopes different colours
    fills = scope_fills(html)
    assert len(fills["Affine"]) == 1 and all(len(f) == 1 for f in fills.values())
    assert len({next(iter(f)) for f in fills.values()}) == len(fills) == 14
    assert set(fills) <= set(re.findall(r'<li data-scope="([^"]*)"', html))   # each in the legend
    # losses with their targets; key settings from the registry
    assert "target Constant \u00d71, weight 1" in found["Generator/GReal"]["text"]
    assert "target Constant \u00d70" in found["DiscriminatorFake/Fake"]["text"]
    assert "Uniform \u00d71" in found["Generator/Z"]["text"]
    assert "dataset x" in found["DiscriminatorReal/Input"]["text"]
    assert "out_maps 32, kernel_shape 6,6" in found["Generator/Deconvolution"]["text"]
    assert "with_bias false" in found["Generator/Deconvolution"]["text"]     # wrapped, not cut off
    assert "batch_stat false" in found["RuntimeGenerator/BatchNormalization"]["text"]
    # links: one per input, Concatenate's skip input from OneHot included
    links = set(re.findall(r'data-from="([^"]*)" data-to="([^"]*)"', html))
    net = graph.networks["Generator"]
    assert len(re.findall(r'class="network"', html)) == 4
    for layer in net.layers:
        for src in layer.inputs:
            assert (src, layer.name) in links
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:|//)', html)
    assert "-> " in capsys.readouterr().out


def test_user_text_is_escaped_and_partial_multipliers_shown(tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text(ODD)
    graph = parse_graph(path)
    html = view_page(graph)
    found = check_every_layer_drawn(graph, html)
    assert "<b>" not in html and "A&lt;b&gt;&amp;&quot;&#x27;" in html
    assert 'N1/A<b>&"\'' in found                       # the parser reads back the real name
    assert "W\u00d71 b\u00d70" in found['N1/A<b>&"\'']["text"]
    assert "W\u00d70.5 b\u00d70" in found['N2/p_A<b>&"\'']["text"]
    assert "frozen" in found['N2/q_A<b>&"\'']["attrs"]["class"]
    # p_ shares N1's scope (named in a badge, as its name differs); q_ has its own
    assert found['N2/p_A<b>&"\'']["attrs"]["data-scope"] == 'A<b>&"\''
    assert 'A<b>&"\'' in found['N2/p_A<b>&"\'']["text"]
    assert len(scope_fills(html)['A<b>&"\'']) == 1
    assert "target Y, weight 0.5" in found["N1/L1"]["text"]
    assert "target Constant \u00d70" in found["N2/L2"]["text"]
    assert found["N2/L2.T"]["attrs"]["class"].split()[:2] == ["layer", "target"]
    assert "Normal \u00d70.5" in found["N1/Y"]["text"]


def test_view_takes_overrides(tmp_path, capsys):
    out = tmp_path / "g.html"
    assert cli.main(["view", str(CGAN), "-o", str(out), "--set", "blocks.generator.layers.5.out_shape=256"]) == 0
    found = boxes(out.read_text(encoding="utf-8"))
    for net in ("Generator", "DiscriminatorFake", "RuntimeGenerator"):
        assert "out_shape 256" in found[f"{net}/Affine"]["text"]
        assert "(256)" in found[f"{net}/BatchNormalization"]["text"]
        assert "(266)" in found[f"{net}/Concatenate_2"]["text"]
    assert "override blocks.generator.layers.5.out_shape" in out.read_text(encoding="utf-8")


def test_view_of_a_broken_graph_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ODD.replace("out_shape: 8", "out_shape: -8"))
    assert cli.main(["view", str(bad), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:9" in err and "out_shape" in err
    assert not (tmp_path / "x.html").exists()


def test_the_page_loads_in_chromium_without_errors_and_shows_every_layer(tmp_path):
    out = tmp_path / "g.html"
    assert cli.main(["view", str(CGAN), "-o", str(out)]) == 0
    dom, console = load(out, tmp_path)
    assert console == []
    graph = parse_graph(CGAN)
    n = sum(len(net.layers) for net in graph.networks.values())
    assert f'data-view-ready="{n}"' in dom                       # the page's script ran to its end
    assert set(boxes(dom)) == {f"{net.name}/{l.name}" for net in graph.networks.values() for l in net.layers}


def test_the_browser_check_sees_script_errors(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>null.x;</script></body></html>")
    _, console = load(page, tmp_path)
    assert any("Uncaught TypeError" in line for line in console)

"""Graph parameters: `params:` and `${EXPR}` values, overridable with --set params.NAME=V."""

import pytest

from nncgan import cli
from nncgan.errors import GraphError
from nncgan.graph import overrides
from nncgan.graph.params import ParamError, evaluate

GRAPH = """\
nncgan: 1
name: "p${h}x"
params:
  h: 32
  half: "${h / 2}"
dataset: {name: mnist}
config: {batch_size: 2}
networks:
  Runtime:
    layers:
      - {name: Z, type: Input, size: 4, generator: Normal}
      - {name: Affine, type: Affine, out_shape: ["${h / 8}", "${half}"]}
      - {name: Loss, type: SquaredError, target: {generator: Constant, multiplier: 0}}
optimizers:
  Runtime: {network: Runtime, solver: Adam}
executors:
  Executor: {network: Runtime, output: Affine}
"""


def _graph(tmp_path, text=GRAPH):
    p = tmp_path / "g.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, values, want", [
    ("h / 8", {"h": 64}, 8), ("(8 - h % 8) % 8", {"h": 28}, 4), ("256 * (h // 8) * (h // 8)", {"h": 28}, 2304),
    ("-h + 1", {"h": 3}, -2), ("h / 4", {"h": 2.0}, 0.5), ("3 + pad", {"pad": 2}, 5)])
def test_expressions_evaluate(text, values, want):
    assert evaluate(text, values) == want and type(evaluate(text, values)) is type(want)


@pytest.mark.parametrize("text, values, message", [
    ("h / 8", {"h": 30}, "${h / 8} is 30/8 = 3.75, not a whole number (with h=30)"),
    ("hh * 2", {"h": 3}, "unknown parameter 'hh' in ${hh * 2}; did you mean 'h'?"),
    ("__import__('os')", {}, "only numbers, parameters"),
    ("h ** 2", {"h": 3}, "only numbers, parameters"),
    ("h / 0", {"h": 3}, "division by zero")])
def test_bad_expressions_are_refused_with_the_reason(text, values, message):
    with pytest.raises(ParamError) as e:
        evaluate(text, values)
    assert message in str(e.value)


def test_params_set_shapes_and_set_overrides_them(tmp_path):
    g, _ = overrides.load(_graph(tmp_path))
    assert g.params == {"h": 32, "half": 16}
    assert g.name == "p32x"                                          # inside a string: its text
    assert g.networks["Runtime"].layer("Affine").shape == (4, 16)
    g, _ = overrides.load(_graph(tmp_path), ["params.h=64"])
    assert g.networks["Runtime"].layer("Affine").shape == (8, 32)   # 'half' follows h


def test_a_size_that_does_not_divide_is_reported_at_its_line(tmp_path, capsys):
    path = _graph(tmp_path)
    with pytest.raises(GraphError) as e:
        overrides.load(path, ["params.h=30"])
    assert f"{path}:12: ${{h / 8}} is 30/8 = 3.75, not a whole number (with h=30)" in e.value.problems[0]
    assert cli.main(["check", str(path), "--set", "params.h=30"]) == 2
    assert "g.yaml:12: ${h / 8} is 30/8 = 3.75" in capsys.readouterr().err


def test_params_must_be_numbers(tmp_path):
    with pytest.raises(GraphError) as e:
        overrides.load(_graph(tmp_path, GRAPH.replace("h: 32", "h: [1]")))
    assert any("g.yaml:4: params.h must be a number" in p for p in e.value.problems)

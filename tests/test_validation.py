"""Broken copies of the NNC graph: each problem is reported with file, line, network and layer, exit 2."""
import re

import pytest

from nncgan import cli
from nncgan.errors import GraphError
from nncgan.graph.parse import parse_graph

from conftest import CGAN

TEXT = CGAN.read_text()


def broken(tmp_path, old, new, count=1):
    assert TEXT.count(old) >= 1, old
    p = tmp_path / "broken.yaml"
    p.write_text(TEXT.replace(old, new, count))
    return p


def line_of(path, needle):
    return next(i for i, l in enumerate(path.read_text().splitlines(), 1) if needle in l)


def check(path, capsys):
    rc = cli.main(["check", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    return err


CASES = [
    # (what, old text, new text, the line to point at, expected pieces of the message)
    ("unknown layer type",
     "{name: ReLU_2, type: ReLU}", "{name: ReLU_2, type: Relu}", "name: ReLU_2, type: Relu",
     ["layer 'ReLU_2'", "unknown layer type 'Relu'", "did you mean 'ReLU'", "1 problem(s)"]),  # once, not per network
    ("unknown setting",
     "{name: Affine, type: Affine, out_shape: 512,", "{name: Affine, type: Affine, outshape: 512,",
     "name: Affine, type: Affine, outshape",
     ["layer 'Affine'", "unknown key 'outshape'", "did you mean 'out_shape'", "1 problem(s)"]),  # the cause only
    ("misspelled input",
     "{name: Concatenate_2, type: Concatenate, inputs: [ReLU, OneHot]}",
     "{name: Concatenate_2, type: Concatenate, inputs: [ReLU, OneHots]}", "inputs: [ReLU, OneHots]",
     ["layer 'Concatenate_2'", "input 'OneHots' is not a layer of network", "did you mean 'OneHot'"]),
    ("duplicate name",
     "{name: ReLU_3, type: ReLU}", "{name: ReLU_2, type: ReLU}", None,
     ["duplicate layer name 'ReLU_2'"]),
    ("cycle",
     "{name: Concatenate_2, type: Concatenate, inputs: [ReLU, OneHot]}",
     "{name: Concatenate_2, type: Concatenate, inputs: [ReLU_2, OneHot]}", None,
     ["cycle in network", "Concatenate_2 -> Affine_2 -> BatchNormalization_2 -> ReLU_2 -> Concatenate_2"]),
    ("scope reused with another shape",
     "{name: Affine_3, type: Affine, out_shape: 512, with_bias: false}",
     "{name: Affine_3, type: Affine, out_shape: 512, with_bias: false, scope: Affine}", None,
     ["ParameterScope 'Affine' is reused with a different shape", "(3146, 512)", "(110, 512)"]),
    ("shape mismatch",
     "{name: Reshape_2, type: Reshape, out_shape: 3136}", "{name: Reshape_2, type: Reshape, out_shape: 3000}",
     "out_shape: 3000",
     ["layer 'Reshape_2'", "shape mismatch", "3136 elements", "(3000,)"]),
    ("bad multiplier",
     "{use: generator, lr_mult: 0}", "{use: generator, lr_mult: -1}", "{use: generator, lr_mult: -1}",
     ["network 'DiscriminatorFake'", "lr_mult", "finite number >= 0", "-1"]),
    ("unknown dataset variable",
     "{name: Input, type: Input, size: [1, 28, 28], dataset: x}",
     "{name: Input, type: Input, size: [1, 28, 28], dataset: image}", "dataset: image}",
     ["network 'DiscriminatorReal'", "layer 'Input'", "unknown dataset variable 'image'", "has: x, y"]),
    ("input size against the dataset",
     "{name: Input, type: Input, size: [1, 28, 28], dataset: x}",
     "{name: Input, type: Input, size: [3, 28, 28], dataset: x}", "size: [3, 28, 28]",
     ["size (3, 28, 28) does not match dataset variable 'x' of shape (1, 28, 28)"]),
    ("unknown optimizer network",
     "network: DiscriminatorReal\n", "network: DiscriminatorRael\n", "network: DiscriminatorRael",
     ["unknown network 'DiscriminatorRael'", "did you mean 'DiscriminatorReal'"]),
]


@pytest.mark.parametrize("what, old, new, at, pieces", CASES, ids=[c[0] for c in CASES])
def test_each_problem_named_with_file_line_network_layer(tmp_path, capsys, what, old, new, at, pieces):
    path = broken(tmp_path, old, new)
    err = check(path, capsys)
    for piece in pieces:
        assert piece in err, f"{what}: {piece!r} not in:\n{err}"
    assert re.search(re.escape(str(path)) + r":\d+:", err)
    if at:
        assert f"{path}:{line_of(path, at)}:" in err, err


def test_block_problems_name_the_block_and_the_use(tmp_path):
    path = broken(tmp_path, "{name: ReLU_5, type: ReLU}", "{name: ReLU_5, type: ReLU, alpha: 2}")
    with pytest.raises(GraphError) as e:
        parse_graph(path)
    # one mistake in a block used by three networks: reported once, naming each network that uses it
    assert len(e.value.problems) == 1
    p = e.value.problems[0]
    assert "block 'discriminator'" in p and "unknown key 'alpha'" in p
    assert set(re.findall(r"'(\w+)' \(line \d+\)", p)) == {"Generator", "DiscriminatorFake", "DiscriminatorReal"}


def test_every_problem_in_one_pass(tmp_path):
    p = tmp_path / "many.yaml"
    p.write_text(TEXT.replace("type: ReLU}", "type: Relu}", 1).replace("out_shape: 3136", "out_shape: 3000")
                 .replace("batch_size: 64", "batch_size: zero"))
    with pytest.raises(GraphError) as e:
        parse_graph(p)
    text = "\n".join(e.value.problems)
    assert "unknown layer type 'Relu'" in text and "3136 elements" in text and "config.batch_size" in text


@pytest.mark.parametrize("content, piece", [
    ("networks: [\n", "not valid YAML"),
    ("- just a list\n", "must be a YAML mapping"),
    ("a: !!python/object/apply:os.system ['echo hacked']\n", "not valid YAML"),
    ("dataset: {name: mnist}\ndataset: {name: mnist}\n", "duplicate key 'dataset'"),
    ("", "must be a YAML mapping"),
])
def test_bad_yaml_is_an_error_not_a_traceback(tmp_path, capsys, content, piece):
    p = tmp_path / "bad.yaml"
    p.write_text(content)
    assert piece in check(p, capsys)


def test_missing_graph_file(tmp_path, capsys):
    assert "cannot read the graph file" in check(tmp_path / "nope.yaml", capsys)


def test_check_shows_layers_shapes_scopes_and_what_each_optimizer_trains(capsys):
    assert cli.main(["check", str(CGAN)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Deconvolution_2\s+Deconvolution\s+\(1, 28, 28\)", out)
    assert re.search(r"Affine_3\s+DiscriminatorFake, DiscriminatorReal, Generator", out)
    gen = out.split("  Generator: network Generator")[1].split("  DiscriminatorFake:")[0]
    assert "Affine/affine/W x1" in gen and "Convolution_3" not in gen and "trains 11 parameters" in gen
    assert "executor Executor: network RuntimeGenerator, output x2 (layer Sigmoid)" in out


@pytest.mark.parametrize("old, new, piece", [
    ("{name: Affine, type: Affine, out_shape: 512, with_bias: false}",
     "{name: Affine, type: Affine, out_shape: [100000, 100000], with_bias: false}", "parameter W of shape (110, 100000, 100000)"),
    ("{name: Z, type: Input, size: 100, generator: Uniform, multiplier: 1.0}",
     "{name: Z, type: Input, size: [100000, 100000], generator: Uniform, multiplier: 1.0}", "input of shape (100000, 100000)"),
    ("{name: Unpooling, type: Unpooling, kernel_shape: [7, 7]}",
     "{name: Unpooling, type: Unpooling, kernel_shape: [70000, 70000]}", "output of shape (10, 70000, 70000)"),
])
def test_sizes_no_machine_trains_are_refused_before_nnabla(tmp_path, capsys, old, new, piece):
    err = check(broken(tmp_path, old, new), capsys)
    assert piece in err and "nncgan builds at most" in err


@pytest.mark.parametrize("old, new, piece", [
    ("network: DiscriminatorReal\n", "network: ~\n", "optimizer 'DiscriminatorReal': unknown network 'None'"),
    ("Executor: {network: RuntimeGenerator, output: x2}", "Executor: {network: ~, output: x2}",
     "executor 'Executor': unknown network 'None'"),
    ("name: mnist          #", "name: ~          #", "unknown dataset 'None'"),
])
def test_null_where_a_name_belongs_is_reported(tmp_path, capsys, old, new, piece):
    assert piece in check(broken(tmp_path, old, new), capsys)


def test_scope_reused_with_another_shape_names_both_exact_lines(tmp_path):
    path = broken(tmp_path, "{name: Affine_3, type: Affine, out_shape: 512, with_bias: false}",
                  "{name: Affine_3, type: Affine, out_shape: 512, with_bias: false, scope: Affine}")
    with pytest.raises(GraphError) as e:
        parse_graph(path)
    reuse = [p for p in e.value.problems if "is reused with a different shape" in p]
    # once for the discriminator block (not once per network using it), at the reusing layer, naming the first use
    assert len(reuse) == 1
    here, first = line_of(path, "scope: Affine}"), line_of(path, "{name: Affine, type: Affine")
    assert here != first
    for p in reuse:
        assert p.startswith(f"{path}:{here}: layer 'Affine_3'") and "ParameterScope" in p
        assert p.endswith(f"at {path}:{first}: network 'Generator', layer 'Affine' (block 'generator', "
                          f"used at line {line_of(path, '- use: generator')})")

"""--set overrides and `nncgan render`: strict paths and kinds, recorded in the run, same training."""
import numpy as np
import nnabla as nn
import pytest

from nncgan import cli, run as runs
from nncgan.errors import GraphError
from nncgan.graph import overrides
from nncgan.graph.parse import parse_graph

from conftest import CGAN

TEXT = CGAN.read_text()


def params_now():
    return {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}


def line_of(needle):
    return next(i for i, l in enumerate(TEXT.splitlines(), 1) if needle in l)


def test_overrides_reach_the_validated_graph():
    graph, applied = overrides.load(CGAN, ["optimizers.Generator.solver.alpha=0.002", "config.batch_size=32",
                                           "networks.Generator.layers.0.multiplier=2",
                                           "blocks.generator.layers.5.w_init={type: Normal, multiplier: 0.02}",
                                           "optimizers.DiscriminatorReal.solver.alpha=1"])
    assert applied[0] == ("optimizers.Generator.solver.alpha", 0.0005, 0.002)
    assert graph.optimizers[0].solver_settings["alpha"] == 0.002
    assert graph.optimizers[2].solver_settings["alpha"] == 1.0   # an int where a float is held
    assert graph.optimizers[1].solver_settings["alpha"] == 0.0005
    assert graph.config.batch_size == 32
    assert graph.networks["Generator"].layer("Z").settings["multiplier"] == 2.0
    assert graph.networks["RuntimeGenerator"].layer("Affine").settings["w_init"] == ("Normal", 0.02)
    assert "--set config.batch_size=32" in graph.text
    again = parse_graph(CGAN, raw=overrides.load_file(CGAN), text="")   # the tree on disk is untouched
    assert again.config.batch_size == 64


def test_absent_but_known_keys_can_be_set_and_are_type_checked():
    graph, _ = overrides.load(CGAN, ["blocks.generator.layers.5.with_bias=true"])
    assert graph.networks["Generator"].layer("Affine").settings["with_bias"] is True
    with pytest.raises(GraphError) as e:
        overrides.load(CGAN, ["blocks.generator.layers.5.with_bias=3"])
    assert "with_bias" in str(e.value) and "true or false" in str(e.value)


@pytest.mark.parametrize("assignment, pieces", [
    ("optimizers.Generator.solver.alpah=0.001",
     ["no key 'alpah' in optimizers.Generator.solver", "did you mean 'optimizers.Generator.solver.alpha'",
      f"cgan_mnist.yaml:{line_of('solver: {type: Adam, alpha: 0.0005')}:"]),
    ("config.batchsize=32", ["did you mean 'config.batch_size'", f":{line_of('batch_size: 64')}:"]),
    ("networks.Generatr.layers.0.size=5", ["did you mean 'networks.Generator'"]),
    ("config.batch_size=0.5", ["--set config.batch_size=0.5: config.batch_size must be an integer 1..65,536, "
                               "got 0.5"]),          # the schema's check and message, as for the file
    ("config.save_best=1", ["config.save_best must be true or false, got 1"]),
    ("optimizers.Generator.solver.alpha=fast", ["solver setting 'alpha' must be a finite number >= 0, got 'fast'"]),
    ("networks.Generator.layers.0.name=[Z]", ["holds a string ('Z'), got a list (['Z'])"]),   # not a setting: kind kept
    ("networks.Generator.layers.7.size=5", ["a list of 5 item(s); give an index 0..4, got '7'"]),
    ("config.batch_size", ["expected PATH=VALUE"]),
])
def test_bad_override_is_a_clear_error_exit_2(assignment, pieces, capsys):
    assert cli.main(["check", str(CGAN), "--set", assignment]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for p in pieces:
        assert p in err, (p, err)


def test_override_is_validated_at_the_line_it_changes(capsys):
    assert cli.main(["check", str(CGAN), "--set", "networks.DiscriminatorReal.layers.0.size=[1, 28, 27]"]) == 2
    err = capsys.readouterr().err
    assert f"cgan_mnist.yaml:{line_of('{name: Input, type: Input, size: [1, 28, 28]')}:" in err
    assert "does not match dataset variable 'x'" in err


def test_render_is_explicit_and_rechecks(tmp_path, capsys):
    assert cli.main(["render", str(CGAN), "--set", "config.seed=5"]) == 0
    text = capsys.readouterr().out
    assert "use:" not in text and "blocks:" not in text and "defaults:" not in text
    assert "# override config.seed: 1 -> 5" in text
    # the frozen discriminator in Generator, written per parameter; the target back as `target:`
    assert ("{name: Affine_4, type: Affine, inputs: [Concatenate_8], scope: Affine_4, lr_mult: {W: 0.0, b: 0.0}"
            in text)
    assert "{name: GReal, type: BinaryCrossEntropy, inputs: [Sigmoid_2], target: {generator: Constant, " \
           "multiplier: 1.0}" in text and ".T" not in text
    assert "w_init: {type: NormalAffineGlorot, multiplier: 1.0}" in text and "epsilon: 0.01" in text
    p = tmp_path / "rendered.yaml"
    p.write_text(text)
    assert cli.main(["check", str(p)]) == 0
    g1, _ = overrides.load(CGAN, ["config.seed=5"])
    g2 = parse_graph(p)
    assert g2.config == g1.config
    for name, net in g1.networks.items():
        got = g2.networks[name]
        assert [(l.name, l.type, l.inputs, l.settings, l.scope, l.lr_mult, l.shape) for l in got.layers] == \
               [(l.name, l.type, l.inputs, l.settings, l.scope, l.lr_mult, l.shape) for l in net.layers]


def test_render_trains_to_the_same_parameters_and_an_override_is_trained_and_recorded(
        tmp_path, small_mnist, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["render", str(CGAN)]) == 0
    (tmp_path / "rendered.yaml").write_text(capsys.readouterr().out)

    def train(graph, *sets):
        assert cli.main(["train", graph, "--epochs", "1", "--batch-size", "32", "--quiet", *sets]) == 0
        return params_now()

    original = train(str(CGAN))
    rendered = train("rendered.yaml")
    assert original.keys() == rendered.keys() and len(original) == 34
    for k in original:
        assert np.array_equal(original[k], rendered[k]), k

    changed = train(str(CGAN), "--set", "optimizers.Generator.solver.alpha=0.002", "--out", "over")
    assert "override optimizers.Generator.solver.alpha: 0.0005 -> 0.002" in capsys.readouterr().out
    assert not np.array_equal(changed["Affine/affine/W"], original["Affine/affine/W"])
    copy = (tmp_path / "over" / runs.GRAPH_COPY).read_text()
    assert copy.startswith("# cgan_mnist.yaml with overrides from the command line:\n"
                           "#   --set optimizers.Generator.solver.alpha=0.002\n")
    resumed = parse_graph(tmp_path / "over" / runs.GRAPH_COPY)   # what --resume trains
    assert [o.solver_settings["alpha"] for o in resumed.optimizers] == [0.002, 0.0005, 0.0005]
    assert cli.main(["train", str(CGAN), "--resume", "--out", "over", "--set", "config.seed=3"]) == 2
    assert "--set cannot be used with --resume" in capsys.readouterr().err

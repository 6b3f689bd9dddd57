"""`nncgan import`: NNC's own sample projects and nncgan's NNP export back to graphs that check and train."""
import re
import zipfile
from pathlib import Path

import numpy as np
import nnabla as nn
import pytest

from nncgan import cli
from nncgan.builder import build_network
from nncgan.graph.parse import parse_graph
from nncgan.layers import get as get_layer_type
from nncgan.train import checkpoint

from conftest import CGAN, ROOT

NNC = ROOT.parent / "shared" / "nnc"
WITH_LABEL = NNC / "mnist_dcgan_with_label.sdcproj"
DCGAN = NNC / "mnist_dcgan.sdcproj"
# Sony's NNC sample projects are references kept beside the checkout, not copied into it
# (../shared/nnc/SOURCE.md); the import itself is also tested on hand-written files below.
needs_samples = pytest.mark.skipif(
    not (WITH_LABEL.is_file() and DCGAN.is_file()),
    reason=f"compares against Sony's NNC sample projects, which are not in the repository: put "
           f"{WITH_LABEL.name} and {DCGAN.name} (NNC's image_generation samples) in {NNC}")


def signature(graph):
    """What a network computes and trains, independent of how the file spells it: every
    parametric layer by scope (type, shapes, multipliers, settings with the convolution
    geometry resolved), the inputs, the losses and their targets; optimizers; executors."""
    nets = {}
    for name, net in graph.networks.items():
        by_name = {l.name: l for l in net.layers}
        params, inputs, losses = {}, [], []
        for l in net.layers:
            lt = get_layer_type(l.type)
            if lt.params:
                s = dict(l.settings)
                if hasattr(lt, "geometry"):
                    k, p, st, d = lt.geometry(s, l.in_shapes[0])
                    s.update(kernel_shape=tuple(k), pad=tuple(p), stride=tuple(st), dilation=tuple(d), border_mode=None)
                s = {k: tuple(v) if isinstance(v, list) else v for k, v in s.items()}
                params[l.scope] = (l.type, l.shape, tuple(l.in_shapes), l.lr_mult, s)
            elif lt.is_input and not l.name.endswith(".T"):
                s = l.settings
                inputs.append((l.shape, s["generator"], s["multiplier"] if s["generator"] else None, s["dataset"]))
            elif lt.is_loss:
                pred, target = by_name[l.inputs[0]], by_name[l.inputs[1]].settings
                fused = l.type == "BinaryCrossEntropy" and pred.type == "Sigmoid"  # nncgan fuses these
                kind = "SigmoidCrossEntropy" if fused else l.type
                logits = by_name[pred.inputs[0]].scope if fused else pred.scope
                losses.append((kind, logits, l.shape, target["generator"], target["multiplier"], target["dataset"]))
        nets[name] = (params, sorted(inputs, key=repr), sorted(losses, key=repr))
    opts = [(o.network, o.solver, o.solver_settings, o.update_interval) for o in graph.optimizers]
    exes = [(e.network, graph.networks[e.network].layer(graph.networks[e.network].outputs.get(e.output, e.output)).shape)
            for e in graph.executors.values()]
    return nets, opts, exes


def _import(src, out):
    assert cli.main(["import", str(src), "-o", str(out)]) == 0
    assert cli.main(["check", str(out)]) == 0
    return parse_graph(out)


@needs_samples
def test_nnc_sample_with_label_imports_as_the_graph_written_from_it(tmp_path):
    imported = _import(WITH_LABEL, tmp_path / "with_label.yaml")
    ours = parse_graph(CGAN)
    a, b = signature(imported), signature(ours)
    assert a[0].keys() == b[0].keys() == {"Generator", "DiscriminatorFake", "DiscriminatorReal", "RuntimeGenerator"}
    for net in a[0]:
        assert a[0][net] == b[0][net], net
    # NNC names its optimizers Optimizer, Optimizer_1, ...; what they run is the same.
    assert [o[0] for o in a[1]] == ["Generator", "DiscriminatorFake", "DiscriminatorReal"]
    assert a[1] == b[1] and a[2] == b[2]
    assert (imported.config.batch_size, imported.config.max_epoch) == (64, 100)
    assert imported.dataset.name == "mnist"
    # The frozen half, read from the project's own LRateMultiplier properties.
    gen = imported.networks["Generator"]
    assert gen.layer("Affine_3").lr_mult == {"W": 0.0} and gen.layer("Affine").lr_mult == {"W": 1.0}
    assert imported.networks["RuntimeGenerator"].layer("BatchNormalization").settings["batch_stat"] is False


def _sdc_multipliers(path, network):
    """{layer name: W.LRateMultiplier} read straight from the project text, section by section."""
    out = {}
    for section in re.split(r"\n(?=\[)", Path(path).read_text()):
        if not section.startswith(f"[{network}_Layer_"):
            continue
        props = dict(re.findall(r"Property_(\d+)_Name=(.*)", section))
        values = dict(re.findall(r"Property_(\d+)_Value=(.*)", section))
        named = {props[k]: values.get(k, "") for k in props}
        if "W.LRateMultiplier" in named:
            out[named["Name"]] = float(named["W.LRateMultiplier"])
    return out


@needs_samples
def test_nnc_dcgan_sample_imports_with_its_multipliers_and_says_what_it_drops(tmp_path, capsys):
    out = tmp_path / "dcgan.yaml"
    graph = _import(DCGAN, out)
    err = capsys.readouterr().out
    assert "WeightDecay 0.0001" in err and "WeightDecay 0.0001" in out.read_text()
    assert list(graph.networks) == ["TrainDiscriminator", "TrainGenerator", "ValidDiscriminator",
                                    "ValidGenerator", "Runtime"]
    assert [(o.network, o.solver, o.solver_settings["alpha"]) for o in graph.optimizers] == [
        ("TrainDiscriminator", "Adam", 0.001), ("TrainGenerator", "Adam", 0.001)]
    for name in ("TrainGenerator", "TrainDiscriminator"):
        expected = _sdc_multipliers(DCGAN, name)
        net = graph.networks[name]
        got = {l.name: l.lr_mult["W"] for l in net.layers if "W" in l.lr_mult}
        assert got == expected and 0.0 in got.values() and 1.0 in got.values()
    z = [l for l in graph.networks["Runtime"].layers if l.type == "Input"]
    assert [(l.shape, l.settings["generator"]) for l in z] == [((100,), "Normal")]
    assert any(l.type == "LeakyReLU" and l.settings["alpha"] == 0.1 for l in graph.networks["TrainGenerator"].layers)
    # What the executor draws is an image.
    ex = graph.executor
    assert graph.networks[ex.network].layer(ex.output).shape == (1, 28, 28)


@needs_samples
def test_imported_sample_trains(tmp_path, monkeypatch, mnist_dir):
    out = tmp_path / "with_label.yaml"
    _import(WITH_LABEL, out)
    monkeypatch.setenv("NNCGAN_LIMIT_SAMPLES", "16")
    monkeypatch.setenv("NNCGAN_MNIST_DIR", str(mnist_dir))
    run = tmp_path / "run"
    assert cli.main(["train", str(out), "--epochs", "1", "--batch-size", "16", "--out", str(run), "--quiet",
                     "--context", "cpu"]) == 0
    import json
    state = json.loads((checkpoint.latest(run) / checkpoint.STATE).read_text())
    assert state["iteration"] == 1
    losses = state["losses"]["1"]
    assert set(losses) == {"Optimizer", "Optimizer_1", "Optimizer_2"} and all(np.isfinite(list(losses.values())))


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory, mnist_dir):
    root = tmp_path_factory.mktemp("imp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNCGAN_LIMIT_SAMPLES", "32")
        mp.setenv("NNCGAN_MNIST_DIR", str(mnist_dir))
        assert cli.main(["train", str(CGAN), "--epochs", "1", "--batch-size", "16", "--out", str(root / "run"),
                         "--quiet", "--context", "cpu"]) == 0
    nnp = root / "cgan.nnp"
    assert cli.main(["export", str(root / "run"), "-o", str(nnp), "--max-epoch", "3"]) == 0
    return root / "run", nnp


def _losses_with(graph, network, run, batch=8):
    """The network's loss terms with the run's parameters, a fixed batch and fixed generator draws."""
    nn.clear_parameters()
    built = build_network(graph.networks[network], batch)
    checkpoint.load(run)
    rng = np.random.RandomState(0)
    data = {"x": rng.rand(batch, 1, 28, 28), "y": rng.randint(0, 10, (batch, 1))}
    built.feed(data, np.random.RandomState(1))
    built.loss.forward()
    return float(built.loss.d)


def test_exported_nnp_imports_to_the_same_networks_and_losses(exported_run, tmp_path):
    run, nnp = exported_run
    imported = _import(nnp, tmp_path / "back.yaml")
    ours = parse_graph(run / "graph.yaml")
    a, b = signature(imported), signature(ours)
    assert a == b
    assert (imported.config.batch_size, imported.config.max_epoch) == (16, 3)
    for network in ("Generator", "DiscriminatorFake", "DiscriminatorReal"):
        assert _losses_with(imported, network, run) == pytest.approx(_losses_with(ours, network, run), abs=1e-6)
    # The .nntxt inside the NNP imports to the same graph text, name aside.
    with zipfile.ZipFile(nnp) as z:
        (tmp_path / "net.nntxt").write_bytes(z.read("network.nntxt"))
    from_nntxt = _import(tmp_path / "net.nntxt", tmp_path / "from_nntxt.yaml")
    assert signature(from_nntxt) == a


def _fails(args, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_broken_files_are_named_with_line_and_what_was_expected(tmp_path, capsys):
    bad = tmp_path / "bad.sdcproj"
    out = tmp_path / "g.yaml"
    bad.write_text("[Global]\nNumNetwork=1\nNetwork_0=G\nthis is not a key value line\n")
    err = _fails(["import", str(bad), "-o", str(out)], capsys)
    assert f"{bad}:4: [Global] expected a Key=Value line" in err
    bad.write_text("[Global]\nNumNetwork=1\nNetwork_0=G\n[G_Network_Global]\nNumLayer=1\nNumLink=0\n"
                   "[G_Layer_0]\nID=0\nType=FancyLayer\nNumProperty=1\nProperty_0_Name=Name\nProperty_0_Value=F\n")
    err = _fails(["import", str(bad), "-o", str(out)], capsys)
    assert f"{bad}:7: [G_Layer_0] expected a layer type nncgan knows" in err and "'FancyLayer'" in err
    bad.write_text("[Global]\nNumNetwork=2\nNetwork_0=G\n")
    err = _fails(["import", str(bad), "-o", str(out)], capsys)
    assert "expected a Network_1= line" in err and str(bad) in err
    nntxt = tmp_path / "bad.nntxt"
    nntxt.write_text('network {\n  name: "N"\n  function { nme: "x" }\n}\n')
    err = _fails(["import", str(nntxt), "-o", str(out)], capsys)
    assert f"{nntxt}:3" in err
    nnp = tmp_path / "bad.nnp"
    nnp.write_bytes(b"not a zip")
    assert "not one" in _fails(["import", str(nnp), "-o", str(out)], capsys)
    assert not out.exists()


@needs_samples
def test_unknown_property_is_named(tmp_path, capsys):
    text = WITH_LABEL.read_text().replace("Property_1_Name=OutShape\nProperty_1_Value=512",
                                          "Property_1_Name=OutShapes\nProperty_1_Value=512", 1)
    src = tmp_path / "edited.sdcproj"
    src.write_text(text)
    err = _fails(["import", str(src), "-o", str(tmp_path / "g.yaml")], capsys)
    assert str(src) in err and "[Generator_Layer_3]" in err and "OutShapes='512'" in err

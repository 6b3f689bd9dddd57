"""`nncgan import`: NNC's own sample projects and nncgan's NNP export back to graphs that check and train."""
import re
import subprocess
import sys
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
            elif lt.is_input and l.target_of is None:
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
    # Weight decay is kept, and the monitors NNC runs (which move the BN statistics it saves).
    assert [o.weight_decay for o in graph.optimizers] == [0.0001, 0.0001]
    assert [o.lr_scheduler for o in graph.optimizers] == [None, None]   # Exponential x1: a constant rate
    assert graph.config.monitor == {"interval": 10, "monitors": {
        "train_error": {"network": "ValidDiscriminator", "dataset": "validation"},
        "valid_error": {"network": "ValidGenerator", "dataset": "validation"}}}
    assert "warning" not in err   # nothing of the sample is dropped
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


@needs_samples
def test_imported_dcgan_trains_with_its_weight_decay(tmp_path, monkeypatch, mnist_dir):
    """mnist_dcgan.sdcproj's WeightDecay 0.0001 reaches the solvers: the same run without it differs."""
    out = tmp_path / "dcgan.yaml"
    _import(DCGAN, out)
    monkeypatch.setenv("NNCGAN_LIMIT_SAMPLES", "16")
    monkeypatch.setenv("NNCGAN_MNIST_DIR", str(mnist_dir))
    params = {}
    for wd in ("0.0001", "0.0"):
        run = tmp_path / f"run{wd}"
        assert cli.main(["train", str(out), "--epochs", "1", "--batch-size", "16", "--out", str(run), "--quiet",
                         "--context", "cpu", "--set", f"optimizers.Optimizer.weight_decay={wd}",
                         "--set", f"optimizers.Optimizer_1.weight_decay={wd}"]) == 0
        nn.clear_parameters()
        checkpoint.load(run)
        params[wd] = {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}
    a, b = params["0.0001"], params["0.0"]
    assert all(np.isfinite(v).all() for v in a.values())
    changed = [k for k in a if not np.array_equal(a[k], b[k])]
    assert any(k.endswith("/W") for k in changed)


NNABLA_CLI = Path(sys.executable).with_name("nnabla_cli")
CLI_SEEDED = ("import sys, numpy as np, nnabla.random as r; r.prng = np.random.RandomState(int(sys.argv.pop(1)));"
              "from nnabla.utils.cli.cli import main; sys.argv[0] = 'nnabla_cli'; sys.exit(main())")


@needs_samples
@pytest.mark.skipif(not NNABLA_CLI.exists(), reason="nnabla_cli not installed beside this python")
def test_imported_dcgan_trains_two_iterations_as_nnabla_cli(tmp_path, monkeypatch, mnist_dir):
    """mnist_dcgan.sdcproj imported, from the same parameters, data and generator draws: two
    iterations of nncgan and of `nnabla_cli train` on the NNP of the same networks agree (weight
    decay 0.0001, Sigmoid + BinaryCrossEntropy as NNC computes them). The monitors are left out
    of both: they move only BatchNormalization's running statistics."""
    from google.protobuf import text_format
    from PIL import Image
    from nncgan.builder import build_all
    from nncgan.interop.nnp_export import read_nnp_proto
    from nncgan.layers import cpu_kernels
    from nncgan.train.optimizer import OptimizerStep
    out = tmp_path / "dcgan.yaml"
    _import(DCGAN, out)
    monkeypatch.setenv("NNCGAN_LIMIT_SAMPLES", "32")
    monkeypatch.setenv("NNCGAN_MNIST_DIR", str(mnist_dir))
    run, nnp = tmp_path / "run", tmp_path / "dcgan.nnp"
    assert cli.main(["train", str(out), "--epochs", "1", "--batch-size", "16", "--out", str(run), "--quiet",
                     "--context", "cpu", "--set", "config.monitor=null"]) == 0
    assert cli.main(["dataset", "export", "mnist", str(tmp_path / "ds"), "--limit", "32", "--split", "train"]) == 0
    csv_path = tmp_path / "ds" / "mnist_training.csv"
    assert cli.main(["export", str(run), "-o", str(nnp), "--max-epoch", "1", "--dataset-csv", str(csv_path),
                     "--no-monitors"]) == 0
    proto = read_nnp_proto(nnp)
    for d in proto.dataset:
        d.shuffle = False
    assert not proto.monitor and proto.training_config.iter_per_epoch == 2
    assert [o.solver.weight_decay for o in proto.optimizer] == pytest.approx([1e-4, 1e-4])
    fixed = tmp_path / "fixed.nnp"
    with zipfile.ZipFile(nnp) as src, zipfile.ZipFile(fixed, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, text_format.MessageToString(proto) if name.endswith(".nntxt") else src.read(name))
    (tmp_path / "cli").mkdir()
    r = subprocess.run([sys.executable, "-c", CLI_SEEDED, "7", "train", "-c", str(fixed), "-p", str(fixed),
                        "-o", str(tmp_path / "cli")], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0 and "Training Completed" in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    with zipfile.ZipFile(tmp_path / "cli" / "results.nnp") as z:
        z.extract(next(n for n in z.namelist() if n.endswith((".h5", ".protobuf"))), tmp_path / "cli_params")
    nn.clear_parameters()
    nn.load_parameters(str(next((tmp_path / "cli_params").iterdir())))
    theirs = {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}

    # nncgan: the exported parameters, the CSV's images in order, the same generator draws.
    graph = parse_graph(run / "graph.yaml")
    graph.config.batch_size = 16
    nn.clear_parameters()
    with cpu_kernels.disabled():  # NNabla's own kernels, as nnabla_cli computes: the fast ones round differently
        nets, _ = build_all(graph, 16, 0)
    checkpoint.load(run)
    steps = [OptimizerStep(o, nets[o.network]) for o in graph.optimizers]
    rows = [l.split(",")[0] for l in csv_path.read_text().splitlines()[1:]]
    images = np.stack([np.asarray(Image.open(csv_path.parent / p), np.float32)[None] / 255.0 for p in rows])
    rng = np.random.RandomState(7)
    for it in range(2):
        batch = {"x": images[16 * it:16 * (it + 1)], "y": np.zeros((16, 1), np.float32)}
        for s in steps:
            s(batch, rng, it)
    ours = {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}
    assert ours.keys() == theirs.keys()
    worst = max(float(np.abs(ours[k] - theirs[k]).max()) for k in ours)
    assert worst < 1e-5, sorted(((float(np.abs(ours[k] - theirs[k]).max()), k) for k in ours), reverse=True)[:5]
    # measured: 0.0, bit for bit (with NNabla's kernels, as nnabla_cli computes)

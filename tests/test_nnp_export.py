"""`nncgan export RUN --format nnp`: read back by NNabla's own loaders and trained by `nnabla_cli train`."""
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import nnabla as nn
import pytest
from google.protobuf import text_format
from PIL import Image

from nncgan import cli
from nncgan.builder import build_network
from nncgan.images import tile
from nncgan.interop.nnp_export import load_run_graph, read_nnp_proto
from nncgan.sampling import Sampler
from nncgan.train import checkpoint

from conftest import CGAN

NNABLA_CLI = Path(sys.executable).with_name("nnabla_cli")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist_dir):
    """One epoch of cgan_mnist on 64 images, its CSV dataset, and the NNP exported from it."""
    root = tmp_path_factory.mktemp("nnp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNCGAN_LIMIT_SAMPLES", "64")
        mp.setenv("NNCGAN_MNIST_DIR", str(mnist_dir))
        run = root / "run"
        assert cli.main(["train", str(CGAN), "--epochs", "1", "--batch-size", "16", "--out", str(run),
                         "--quiet", "--context", "cpu"]) == 0
        assert cli.main(["dataset", "export", "mnist", str(root / "ds"), "--limit", "48"]) == 0
    nnp = root / "cgan.nnp"
    assert cli.main(["export", str(run), "--format", "nnp", "-o", str(nnp), "--max-epoch", "1",
                     "--dataset-csv", str(root / "ds" / "mnist_training.csv"),
                     "--validation-csv", str(root / "ds" / "mnist_test.csv")]) == 0
    return {"root": root, "run": run, "nnp": nnp, "proto": read_nnp_proto(nnp)}


def _params_of(nnp_or_file):
    """{name: array} of the parameter file inside an NNP (or a parameter file itself)."""
    nn.clear_parameters()
    path = str(nnp_or_file)
    if path.endswith(".nnp"):
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith((".h5", ".protobuf")))
            dest = Path(path).with_suffix(".params")
            z.extract(name, dest)
            path = str(dest / name)
    nn.load_parameters(path)
    out = {k: np.array(v.d) for k, v in nn.get_parameters(grad_only=False).items()}
    nn.clear_parameters()
    return out


def test_nnp_holds_the_graph_its_multipliers_generators_datasets_and_last_epoch(exported):
    proto, run = exported["proto"], exported["run"]
    graph = load_run_graph(run)
    assert [n.name for n in proto.network] == ["Generator", "DiscriminatorFake", "DiscriminatorReal",
                                                "RuntimeGenerator"]
    assert [o.name for o in proto.optimizer] == ["Generator", "DiscriminatorFake", "DiscriminatorReal"]
    for opt in proto.optimizer:
        # What nncgan's builder trains in that network is exactly what the NNP gives a non-zero multiplier.
        nn.clear_parameters()
        trains = set(build_network(graph.networks[opt.network_name], 4).trainable)
        mults = {p.variable_name: p.learning_rate_multiplier for p in opt.parameter_variable}
        assert {k for k, m in mults.items() if m > 0} == trains
        assert opt.solver.type == "Adam" and opt.solver.adam_param.alpha == pytest.approx(0.0005)
        assert opt.solver.adam_param.beta1 == pytest.approx(0.5)
        assert opt.dataset_name == ["Training"]
    by_name = {o.name: o for o in proto.optimizer}
    g, fake, real = by_name["Generator"], by_name["DiscriminatorFake"], by_name["DiscriminatorReal"]
    assert "Affine_3/affine/W" in {p.variable_name for p in g.parameter_variable}  # D, frozen there
    assert [(v.variable_name, v.data_name) for v in g.data_variable] == [("GY", "y")]
    assert [(v.variable_name, v.data_name) for v in real.data_variable] == [("Input", "x"), ("GY", "y")]
    gens = {o.name: {(v.variable_name, v.type, v.multiplier) for v in o.generator_variable} for o in proto.optimizer}
    assert gens["Generator"] == {("Z", "Uniform", 1.0), ("GReal.T", "Constant", 1.0)}
    assert gens["DiscriminatorFake"] == {("Z", "Uniform", 1.0), ("Fake.T", "Constant", 0.0)}
    assert [v.variable_name for v in fake.loss_variable] == ["Fake"]
    ex = proto.executor[0]
    assert (ex.name, ex.network_name) == ("Executor", "RuntimeGenerator")
    assert [(v.variable_name, v.type, v.multiplier) for v in ex.generator_variable] == [("Z", "Uniform", 1.0)]
    assert [v.variable_name for v in ex.output_variable] == ["x2"]
    csv_train = exported["root"] / "ds" / "mnist_training.csv"
    assert [(d.name, d.uri, d.batch_size) for d in proto.dataset] == [
        ("Training", str(csv_train), 16), ("Validation", str(exported["root"] / "ds" / "mnist_test.csv"), 16)]
    assert proto.training_config.max_epoch == 1 and proto.training_config.iter_per_epoch == 48 // 16
    runtime = {n.name: n for n in proto.network}["RuntimeGenerator"]
    bn = [f for f in runtime.function if f.type == "BatchNormalization"]
    assert bn and not any(f.batch_normalization_param.batch_stat for f in bn)
    inits = {v.name: (v.initializer.type, v.initializer.multiplier) for v in runtime.variable}
    assert inits["Affine/affine/W"] == ("NormalAffineGlorot", 1.0)
    assert inits["BatchNormalization/bn/var"] == ("Constant", 0.0)   # NNC's sample: the running variance from 0
    # NNC's functions: Sigmoid + BinaryCrossEntropy, not the fused form nncgan trains by default.
    types = {f.type for n in proto.network for f in n.function}
    assert "BinaryCrossEntropy" in types and "SigmoidCrossEntropy" not in types
    # The last epoch's parameters, bit for bit.
    saved = _params_of(checkpoint.latest(run) / checkpoint.PARAMS)
    inside = _params_of(exported["nnp"])
    assert saved.keys() == inside.keys()
    assert all(np.array_equal(saved[k], inside[k]) for k in saved)


def test_nnp_runtime_network_draws_what_nncgan_infer_draws(exported, tmp_path):
    from nnabla.utils.nnp_graph import NnpLoader
    run, n, seed = exported["run"], 10, 3
    png = tmp_path / "infer.png"
    assert cli.main(["infer", "--run", str(run), "--num", str(n), "--seed", str(seed), "--out", str(png),
                     "--no-ema", "--context", "cpu"]) == 0
    nn.clear_parameters()
    sampler = Sampler(load_run_graph(run), n)
    checkpoint.load(run)
    labels = np.arange(n) % 10
    ours = sampler.draw(labels, np.random.RandomState(seed))
    z = np.array(sampler.built.generators[0].var.d)

    nn.clear_parameters()
    net = NnpLoader(str(exported["nnp"])).get_network("RuntimeGenerator", batch_size=n)
    assert sorted(net.inputs) == ["GY", "Z"] and list(net.outputs) == ["x2"]
    net.inputs["GY"].d = labels.reshape(n, 1)
    net.inputs["Z"].d = z
    net.outputs["x2"].forward(clear_buffer=True)
    theirs = np.array(net.outputs["x2"].d)
    assert theirs.shape == (n, 1, 28, 28)
    assert np.abs(theirs - ours).max() < 1e-5
    assert theirs.std() > 0.01  # images, not a constant
    # ... and the PNG `nncgan infer` wrote is those images.
    written = np.asarray(Image.open(png), dtype=np.int16)
    assert np.abs(written - np.asarray(tile(theirs), dtype=np.int16)).max() <= 1


def test_nnabla_utils_load_reads_executor_and_optimizers(exported):
    from nnabla.utils import load
    nn.clear_parameters()
    info = load.load([str(exported["nnp"])], prepare_data_iterator=False)
    assert list(info.executors) == ["Executor"] and list(info.optimizers) == [
        "Generator", "DiscriminatorFake", "DiscriminatorReal"]
    assert info.training_config.max_epoch == 1
    nn.clear_parameters()


def _nnabla_cli_train(nnp, out):
    out.mkdir()
    r = subprocess.run([str(NNABLA_CLI), "train", "-c", str(nnp), "-p", str(nnp), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Training Completed" in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    return _params_of(out / "results.nnp")


@pytest.mark.skipif(not NNABLA_CLI.exists(), reason="nnabla_cli not installed beside this python")
def test_nnabla_cli_trains_the_nnp_and_keeps_multiplier_zero_parameters(exported, tmp_path):
    before = _params_of(exported["nnp"])
    # The whole NNP for one epoch: every parameter some optimizer trains moves.
    after = _nnabla_cli_train(exported["nnp"], tmp_path / "all")
    assert after.keys() == before.keys()
    assert all(not np.array_equal(before[k], after[k]) for k in before)
    assert all(np.isfinite(v).all() for v in after.values())

    # Only the Generator optimizer: the discriminator, multiplier 0 there, must not move.
    proto = read_nnp_proto(exported["nnp"])
    keep = [o for o in proto.optimizer if o.name == "Generator"]
    del proto.optimizer[:]
    proto.optimizer.extend(keep)
    del proto.monitor[:]
    only_g = tmp_path / "only_generator.nnp"
    with zipfile.ZipFile(exported["nnp"]) as src, zipfile.ZipFile(only_g, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, text_format.MessageToString(proto) if name.endswith(".nntxt") else src.read(name))
    after = _nnabla_cli_train(only_g, tmp_path / "g")
    mults = {p.variable_name: p.learning_rate_multiplier for p in keep[0].parameter_variable}
    learned = [k for k, m in mults.items() if m > 0]
    frozen = [k for k, m in mults.items() if m == 0 and not k.endswith(("/mean", "/var"))]
    assert len(learned) == 11 and len(frozen) == 11
    assert all(not np.array_equal(before[k], after[k]) for k in learned)
    assert all(np.array_equal(before[k], after[k]) for k in frozen)


def test_export_errors_name_the_file(exported, tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    assert cli.main(["export", str(exported["run"]), "-o", str(tmp_path / "x.nnp"),
                     "--dataset-csv", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path), "-o", str(tmp_path / "x.nnp")]) == 2
    assert "run.json" in capsys.readouterr().err
    assert not (tmp_path / "x.nnp").exists()


@pytest.mark.slow  # the converter loads TensorFlow: ~16 s of start-up
@pytest.mark.skipif(not __import__("nncgan.interop.onnx_export", fromlist=["x"]).converter_available(),
                    reason="nnabla-converter (ONNX) not installed")
def test_onnx_export_is_the_runtime_generator(exported, tmp_path):
    import onnx
    out = tmp_path / "g.onnx"
    assert cli.main(["export", str(exported["run"]), "--format", "onnx", "-o", str(out), "--batch-size", "5"]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    assert dims == {"GY": [5, 1], "Z": [5, 100]}  # the latent is an input, not a frozen draw
    assert [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in model.graph.output] == [
        ("x2", [5, 1, 28, 28])]
    ort = pytest.importorskip("onnxruntime")
    nn.clear_parameters()
    sampler = Sampler(load_run_graph(exported["run"]), 5)
    checkpoint.load(exported["run"])
    labels = np.array([7, 1, 0, 3, 9])
    ours = sampler.draw(labels, np.random.RandomState(5))
    z = np.array(sampler.built.generators[0].var.d, dtype=np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "GY" and session.get_inputs()[0].type == "tensor(int32)"
    theirs = session.run(["x2"], {"GY": labels.reshape(5, 1).astype(np.int32), "Z": z})[0]
    assert np.abs(theirs - ours).max() < 1e-4


def test_onnx_without_the_converter_is_a_clear_error(exported, tmp_path, capsys, monkeypatch):
    from nncgan.interop import onnx_export
    monkeypatch.setattr(onnx_export, "converter_available", lambda: False)
    assert cli.main(["export", str(exported["run"]), "--format", "onnx", "-o", str(tmp_path / "g.onnx")]) == 2
    assert "pip install nnabla-converter" in capsys.readouterr().err

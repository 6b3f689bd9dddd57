"""Everyday use (issue 14), each check run through the CLI as a user types it."""
import json

from nncgan import cli, run as runs

from conftest import ROOT


def train(runs_dir, graph, *extra):
    return cli.main(["train", str(ROOT / "graphs" / graph), "--epochs", "1", "--batch-size", "32",
                     "--runs-dir", str(runs_dir), "--quiet", "--no-eval", *extra])


def test_commands_without_a_run_take_the_latest_gan_not_the_classifier_and_say_so(small_mnist, tmp_path,
                                                                                    capsys):
    small_mnist["n"] = 64
    assert train(tmp_path, "cgan_mnist.yaml") == 0
    assert train(tmp_path, "classifier_mnist.yaml") == 0  # trained after the GAN, as the README asks
    gan = next(d for d in tmp_path.iterdir() if d.name.endswith("cgan_mnist"))
    capsys.readouterr()
    assert cli.main(["infer", "--label", "7", "--num", "10", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"drawing from {gan}, the latest GAN run" in out and (gan / "infer" / "label_7_seed0.png").is_file()
    assert cli.main(["report", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"reporting {gan}, the latest GAN run" in out and (gan / "report.html").is_file()
    assert cli.main(["export", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"exporting {gan}, the latest GAN run" in out and (gan / "export" / f"{gan.name}.nnp").is_file()

"""Training you can watch: a GIF of the epoch tiles, a progress bar with rates, a log file."""
from PIL import Image

from nncgan import cli

from conftest import CGAN


def test_gif_has_one_frame_per_epoch_and_the_log_file_gets_each_epoch(tmp_path, small_mnist, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "train.log"
    log.write_text("an earlier line\n")
    assert cli.main(["train", str(CGAN), "--epochs", "2", "--batch-size", "32", "--out", "r",
                     "--log-file", str(log)]) == 0
    gif = Image.open(tmp_path / "r" / "samples" / "progress.gif")
    assert gif.n_frames == 2 and gif.size == Image.open(tmp_path / "r" / "samples" / "epoch_0002.png").size
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(gif.convert("L").tobytes())
    assert frames[0] != frames[1]
    assert frames[1] == Image.open(tmp_path / "r" / "samples" / "epoch_0002.png").convert("L").tobytes()

    lines = log.read_text().splitlines()
    assert lines[0] == "an earlier line"                      # appended, never truncated
    assert [l.split(" ", 2)[2].split(":")[0] for l in lines if " epoch " in l] == ["epoch 1", "epoch 2"]
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and " img/s]" in err and "| 4/4 [" in err and " G " in err  # running means, short names


def test_log_file_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["train", str(CGAN), "--log-file", str(tmp_path / "no" / "such" / "dir.log"),
                     "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "cannot write the log file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()

"""Training you can watch: a GIF of the epoch tiles, a progress bar with rates, a log file."""
from PIL import Image

from nncgan import cli
from nncgan.train import progress

from conftest import CGAN


def test_gif_has_one_frame_per_epoch_and_the_log_file_gets_each_epoch(tmp_path, small_mnist, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "train.log"
    log.write_text("an earlier line\n")
    assert cli.main(["train", str(CGAN), "--epochs", "2", "--batch-size", "32", "--out", "r",
                     "--log-file", str(log)]) == 0
    gif = Image.open(tmp_path / "r" / "samples" / "progress.gif")
    tile = Image.open(tmp_path / "r" / "samples" / "epoch_0002.png").convert("L")
    strip = progress.CAPTION_PX  # each frame says its epoch above the tile
    assert gif.n_frames == 2 and gif.size == (tile.width, tile.height + strip)
    frames, captions = [], []
    for i in range(gif.n_frames):
        gif.seek(i)
        frame = gif.convert("L")
        frames.append(frame.crop((0, strip, tile.width, tile.height + strip)).tobytes())
        captions.append(frame.crop((0, 0, tile.width, strip)).tobytes())
    assert frames[0] != frames[1] and captions[0] != captions[1]  # "epoch 1", "epoch 2"
    assert all(min(c) < 128 for c in captions)  # dark text drawn on the white strip
    assert frames[1] == tile.tobytes()

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

"""safeio.replacing: the one way a file is replaced (issue 12), the dataset cache and checkpoints/latest included."""
import os

import nnabla as nn
import numpy as np
import pytest

from nncgan import safeio
from nncgan.train import checkpoint


def test_a_failed_write_keeps_the_old_file_leaves_no_temporary_and_raises_as_it_is(tmp_path):
    target = tmp_path / "f.gz"
    target.write_bytes(b"old")
    with pytest.raises(ConnectionResetError):  # an OSError stays one: the dataset cache tries the next mirror
        with safeio.replacing(target) as part:
            assert part.parent == tmp_path and part.name.startswith(".f.gz.") and part.name.endswith(".tmp.gz")
            part.write_bytes(b"half")
            raise ConnectionResetError("download cut")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.gz"]
    with safeio.replacing(target) as part:
        part.write_bytes(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.gz"]


def test_the_latest_pointer_a_killed_save_left_half_written_is_cleared_by_the_next_save(tmp_path):
    nn.clear_parameters()
    nn.parameter.get_parameter_or_create("w", (2,), np.zeros(2, np.float32))
    run = tmp_path / "run"
    checkpoint.save(run, 1, {}, {"epoch": 1})
    left = run / checkpoint.CKPT_DIR / ".latest.k3x_9q2z.tmp"  # safeio's temporary, killed before its rename
    left.write_text("epoch_0001")
    checkpoint.save(run, 2, {}, {"epoch": 2})
    assert sorted(os.listdir(run / checkpoint.CKPT_DIR)) == ["epoch_0002", "latest"]
    assert checkpoint.latest(run).name == "epoch_0002"

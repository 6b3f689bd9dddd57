"""`nncgan train --type-config half` computes in float16 (NNabla's 'half' type config)."""
import nnabla as nn

from conftest import CGAN
from nncgan import cli
from nncgan.train import loop


def test_train_type_config_half_reaches_nnabla_context(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_train(graph, run, **kw):
        seen["ctx"] = nn.get_current_context()
        return {"epoch": 1}
    monkeypatch.setattr(loop, "train", fake_train)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", str(CGAN), "--context", "cpu", "--type-config", "half", "--out", "h"]) == 0
    assert seen["ctx"].backend[0] == "cpu:half"
    assert cli.main(["train", str(CGAN), "--context", "cpu", "--out", "f"]) == 0
    assert seen["ctx"].backend[0] == "cpu:float"
    try:
        cli.main(["train", str(CGAN), "--type-config", "double"])
    except SystemExit as e:  # argparse's own usage error
        assert e.code == 2
    assert "invalid choice: 'double'" in capsys.readouterr().err

"""One learning curve: learning_curve.png and `nncgan report` draw the same figure (issue 12)."""

import matplotlib
import pytest

from nncgan.train import checkpoint, progress
from nncgan.view import report

matplotlib.use("Agg")


def _series(run, name, points):
    path = progress.series_file(run, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i} {v:g}\n" for i, v in points))


@pytest.fixture
def run(tmp_path):
    """A run whose optimizers (Generator, Discriminator, in that order) and a loss term have series."""
    run = tmp_path / "run"
    _series(run, "Generator", [(4, 1.0), (9, 0.8)])
    _series(run, "Discriminator", [(4, 0.7), (9, 0.6)])
    _series(run, "Discriminator-real", [(4, 0.3), (9, 0.2)])  # a term of a loss of several terms
    (run / checkpoint.CKPT_DIR).mkdir()
    return run


def _drawn(monkeypatch, draw):
    """(label, colour, x data) of each line of the figure(s) that `draw` saves."""
    from matplotlib.figure import Figure
    seen, real = [], Figure.savefig

    def savefig(fig, *a, **k):
        seen.append([(l.get_label(), l.get_color(), list(l.get_xdata())) for l in fig.axes[0].lines])
        return real(fig, *a, **k)
    monkeypatch.setattr(Figure, "savefig", savefig)
    draw()
    monkeypatch.undo()
    assert len(seen) == 1
    return seen[0]


def test_the_png_and_the_report_draw_the_same_curves_in_the_same_colours(run, monkeypatch):
    state = {"epoch": 2, "iteration": 10, "losses": {"2": {"Generator": 0.8, "Discriminator": 0.6}}}
    png = _drawn(monkeypatch, lambda: progress.save_learning_curve(run, ["Generator", "Discriminator"], 5))
    html = _drawn(monkeypatch, lambda: report.curves_svg(run, state))
    assert png == html
    assert [label for label, _, _ in png] == ["Generator", "Discriminator", "Discriminator-real"]
    assert png[0][2] == [1.0, 2.0]  # against epochs: (iteration + 1) / iterations per epoch
    assert (run / progress.CURVE).stat().st_size > 0

"""Drawing images from the graph's executor network (NNC's RuntimeGenerator)."""
import numpy as np

from .builder import build_network
from .errors import RunError


def _latent(kind, multiplier, shape, rng):
    return (rng.standard_normal(shape) if kind == "Normal" else rng.uniform(-1.0, 1.0, shape)) * multiplier


MAX_REDRAWS = 64  # rounds of redrawing; a tiny limit (1e-300) accepts almost nothing, and would never end


def truncated(kind, multiplier, shape, rng, limit):
    """Latents as the generator draws them, each value beyond +-limit redrawn until within
    (the truncation trick: fewer, more typical samples). `limit` must be > 0.

    Values still outside after MAX_REDRAWS rounds are drawn from the truncated distribution
    itself (inverse CDF): the same distribution, in bounded time for any limit."""
    v = _latent(kind, multiplier, shape, rng)
    bad = np.abs(v) > limit
    for _ in range(MAX_REDRAWS):
        if not bad.any():
            return v
        v[bad] = _latent(kind, multiplier, int(bad.sum()), rng)
        bad = np.abs(v) > limit
    if bad.any():
        v[bad] = _truncated_exactly(kind, abs(multiplier), int(bad.sum()), rng, limit)
    return v


def _truncated_exactly(kind, scale, n, rng, limit):
    """n values of scale * Normal (or scale * Uniform(-1, 1)) conditioned on |value| <= limit."""
    if kind != "Normal":
        return rng.uniform(-1.0, 1.0, n) * min(limit, scale)
    if limit < 1e-4 * scale:  # the density is flat there to 5e-9: uniform, which ndtri cannot resolve
        return rng.uniform(-limit, limit, n)
    from scipy.special import ndtr, ndtri
    lo = ndtr(-limit / scale)
    z = ndtri(rng.uniform(lo, 1.0 - lo, n)) * scale
    return np.clip(z, -limit, limit)  # ndtri(0.5 +- 1e-17) rounds: keep the promise exactly


def data_inputs(graph, executor=None):
    """Dataset variables the executor reads besides the label y: none for a generator, x for a classifier."""
    ex = graph.executors[executor] if executor else graph.executor
    net = graph.networks[ex.network]
    return sorted({l.settings["dataset"] for l in net.layers
                   if l.type == "Input" and l.settings.get("dataset")} - {"y"})


class Sampler:
    """The executor network built for `n` images; parameters must exist already (trained or loaded)."""

    def __init__(self, graph, n, executor=None):
        ex = graph.executors[executor] if executor else graph.executor
        self.graph, self.n = graph, n
        self.built = build_network(graph.networks[ex.network], n)
        self.output = self.built.outputs[ex.output]
        self.executor = ex
        # Dataset variables besides the label (an image-to-image executor's input image): the
        # caller feeds them (nncgan.feeds: the test split, an --input folder, a pipeline's stage).
        self.needs = sorted(set(self.built.data) - {"y"})
        self.conditional = "y" in self.built.data

    def shape_of(self, var):
        """The shape (without batch axis) the executor reads for dataset variable `var`."""
        return tuple(self.built.data[var][0].shape[1:])

    @property
    def classes(self):
        return self.graph.dataset.classes if self.conditional else 0

    def draw(self, labels, rng, truncation=None, feed=None):
        """Images (n, C, H, W) for `labels` (ignored when unconditional), latents drawn from `rng`.

        With `truncation` T, every Normal/Uniform latent value beyond +-T is redrawn until within.
        `feed` maps each variable in `needs` to an (n, ...) array.
        """
        feed = feed or {}
        missing = [v for v in self.needs if v not in feed]
        if missing:
            raise RunError(f"executor '{self.executor.name}' reads dataset variable(s) {', '.join(missing)}: "
                           f"give them (infer takes them from the test split, or --input [VAR=]DIR)")
        for var in self.needs:
            a = np.asarray(feed[var], np.float32)
            want = (self.n,) + self.shape_of(var)
            if a.shape != want:
                raise RunError(f"executor '{self.executor.name}' reads '{var}' as {want[1:]} per sample "
                               f"({self.n} samples), got an array of shape {a.shape}")
            for v in self.built.data[var]:
                v.d = a
        if self.conditional:
            labels = np.asarray(labels).reshape(self.n, 1)
            for v in self.built.data["y"]:
                v.d = labels
        for g in self.built.generators:
            if truncation is not None and g.kind in ("Normal", "Uniform"):
                g.var.d = truncated(g.kind, g.multiplier, g.var.shape, rng, truncation)
            else:
                g.draw(rng)
        self.output.forward(clear_buffer=True)
        return np.array(self.output.d)

    def check_label(self, label):
        if not self.conditional:
            raise RunError("this graph's executor takes no label (it is unconditional); leave out --label")
        if not (0 <= label < self.classes):
            raise RunError(f"--label {label} is outside the graph's classes 0..{self.classes - 1}")

"""Drawing images from the graph's executor network (NNC's RuntimeGenerator)."""
import numpy as np

from .builder import build_network
from .errors import RunError
from .latent import MAX_REDRAWS, truncated  # noqa: F401  (drawn in nncgan.latent; imported from here too)


def reads(graph, executor=None):
    """{variable: shape} of the dataset variables besides the label y that the executor's network
    reads, in layer order: none for a generator, x for a classifier, the input image of an
    image-to-image executor. The caller feeds them (nncgan.feeds: the test split, an --input
    folder, a pipeline's stage); the one definition `infer`, pipelines, eval and Sampler use."""
    if executor is not None and executor not in graph.executors:
        raise RunError(f"graph '{graph.name}' has no executor '{executor}'; its executors: "
                       f"{', '.join(graph.executors)}")
    ex = graph.executors[executor] if executor else graph.executor
    out = {}
    for layer in graph.networks[ex.network].layers:
        var = layer.settings.get("dataset") if layer.type == "Input" else None
        if var is not None and var != "y":
            out.setdefault(var, tuple(layer.shape))
    return out


def data_inputs(graph, executor=None):
    """The names of what the executor reads (`reads`), sorted."""
    return sorted(reads(graph, executor))


class Sampler:
    """The executor network built for `n` images; parameters must exist already (trained or loaded)."""

    def __init__(self, graph, n, executor=None, placeholder=False):
        """`placeholder`: parameters not yet made are zeros (the caller loads every one), not drawn."""
        ex = graph.executors[executor] if executor else graph.executor
        self.graph, self.n = graph, n
        self.built = build_network(graph.networks[ex.network], n, placeholder=placeholder)
        self.output = self.built.outputs[ex.output]
        self.executor = ex
        self.needs = data_inputs(graph, executor)  # fed by the caller: see reads()
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
            g.draw(rng, truncation)
        self.output.forward(clear_buffer=True)
        return np.array(self.output.d)

    def check_label(self, label):
        if not self.conditional:
            raise RunError("this graph's executor takes no label (it is unconditional); leave out --label")
        if not (0 <= label < self.classes):
            raise RunError(f"--label {label} is outside the graph's classes 0..{self.classes - 1}")

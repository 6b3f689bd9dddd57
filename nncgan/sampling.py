"""Drawing images from the graph's executor network (NNC's RuntimeGenerator)."""
import numpy as np

from .builder import build_network
from .errors import RunError


class Sampler:
    """The executor network built for `n` images; parameters must exist already (trained or loaded)."""

    def __init__(self, graph, n, executor=None):
        ex = graph.executors[executor] if executor else graph.executor
        self.graph, self.n = graph, n
        self.built = build_network(graph.networks[ex.network], n)
        self.output = self.built.outputs[ex.output]
        others = sorted(set(self.built.data) - {"y"})
        if others:
            raise RunError(f"executor '{ex.name}' needs dataset variable(s) {', '.join(others)}, "
                           f"which sampling cannot supply")
        self.conditional = "y" in self.built.data

    @property
    def classes(self):
        return self.graph.dataset.classes if self.conditional else 0

    def draw(self, labels, rng):
        """Images (n, C, H, W) for `labels` (ignored when unconditional), latents drawn from `rng`."""
        if self.conditional:
            labels = np.asarray(labels).reshape(self.n, 1)
            for v in self.built.data["y"]:
                v.d = labels
        for g in self.built.generators:
            g.draw(rng)
        self.output.forward(clear_buffer=True)
        return np.array(self.output.d)

    def check_label(self, label):
        if not self.conditional:
            raise RunError("this graph's executor takes no label (it is unconditional); leave out --label")
        if not (0 <= label < self.classes):
            raise RunError(f"--label {label} is outside the graph's classes 0..{self.classes - 1}")

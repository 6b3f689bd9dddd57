"""nncgan: Neural Network Console style GANs as YAML graphs, trained on NNabla."""

__version__ = "0.1.0"

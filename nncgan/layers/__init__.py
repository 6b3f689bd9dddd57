"""Layer types, registered by their NNC names; importing this package registers them all."""
from . import core, losses, palette  # noqa: F401  (registration happens on import)
from .base import REGISTRY, LayerType, Param, ShapeError, get, known_types  # noqa: F401

"""Graph-file entries written from what NNC and NNabla files hold, shared by both importers
(nnc_import for .sdcproj, nnp_import for .nntxt/.nnp)."""
from pathlib import Path

from .sdcproj import ImportError_


def compact_lr_mult(mults):
    """{W: 1, b: 1} -> None (the default); all equal -> that number; else the mapping."""
    values = set(mults.values())
    if not mults or values == {1.0}:
        return None
    return values.pop() if len(values) == 1 else mults


def in_build_order(layers):
    """Layers ordered so that each comes after its inputs, otherwise as listed (depth first,
    without recursion: an imported network may be thousands of layers long).

    A BinaryCrossEntropy after a Sigmoid is marked `after_sigmoid: nnc`: NNC computes the two
    apart, and the imported graph trains as NNC trains it."""
    by_name = {l["name"]: l for l in layers}
    for l in layers:
        if l["type"] == "BinaryCrossEntropy" and by_name.get((l.get("inputs") or [None])[0], {}).get("type") == "Sigmoid":
            l["after_sigmoid"] = "nnc"
    order, placed = [], set()

    def deps(l):
        target = [l["target"]] if isinstance(l.get("target"), str) else []
        return [i for i in l.get("inputs", []) + target if i in by_name]

    for first in layers:
        stack, on_path = [(first, iter(deps(first)))], {first["name"]}
        if first["name"] in placed:
            continue
        while stack:
            layer, pending = stack[-1]
            nxt = next((by_name[d] for d in pending if d not in placed and d not in on_path), None)
            if nxt is None:  # all inputs placed (a cycle is left to the checker, which names it)
                stack.pop()
                on_path.discard(layer["name"])
                placed.add(layer["name"])
                order.append(layer)
            else:
                on_path.add(nxt["name"])
                stack.append((nxt, iter(deps(nxt))))
    return order


def dataset_entry(uri, description, base):
    """NNC's dataset URI -> `dataset:`: MNIST-like samples to the built-in, anything else as a CSV."""
    file = uri.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if "dataset-require=mnist" in description.lower() or file.startswith("mnist_"):
        return {"name": "mnist"}
    if file.startswith(("fashion_mnist", "fashion-mnist")):
        return {"name": "fashion-mnist"}
    if "{" in uri:  # NNC's {SDCPATH}-style placeholders cannot be resolved here
        raise ImportError_(f"dataset URI {uri!r} names NNC's installation folder; export the dataset "
                           f"as CSV and edit `dataset: {{csv: ...}}` in the imported graph")
    p = Path(uri)
    return {"csv": str(p if p.is_absolute() else (base / p).resolve())}

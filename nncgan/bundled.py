"""The sample graphs shipped inside the package (nncgan/graphs/), found by name from any folder.

`nncgan train cgan_mnist` trains nncgan/graphs/cgan_mnist.yaml when no file of that name is here;
`nncgan graphs` lists them. In a checkout, graphs/ is the same folder (a link), for the README."""
import os
from pathlib import Path

GRAPHS_DIR = Path(__file__).resolve().parent / "graphs"
SUFFIXES = (".yaml", ".pipeline.yaml")


def resolve(path):
    """`path` itself when it exists (or names a folder); else the bundled sample it names."""
    if not path or os.path.exists(path) or os.sep in path:
        return path
    name = path[:-len(".yaml")] if path.endswith(".yaml") else path
    for suffix in SUFFIXES:
        candidate = GRAPHS_DIR / f"{name}{suffix}"
        if candidate.is_file():
            return str(candidate)
    return path


def samples():
    """[(name, description, path)] of every bundled graph and pipeline, sorted by name."""
    from .graph.yamlio import load_file
    from .errors import GraphError
    out = []
    for p in sorted(GRAPHS_DIR.glob("*.yaml")):
        name = p.name[:-len(".yaml")]
        try:
            raw = load_file(str(p))
            desc = raw.get("description") or ""
        except GraphError:
            desc = ""
        out.append((name, str(desc), p))
    return out


def listing():
    rows = samples()
    width = max((len(n) for n, _, _ in rows), default=0)
    lines = [f"sample graphs in {GRAPHS_DIR} (train one by name: nncgan train cgan_mnist):"]
    lines += [f"  {n:<{width}}  {d}" for n, d, _ in rows]
    return "\n".join(lines)

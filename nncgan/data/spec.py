"""A graph's dataset: the `dataset:` mapping as written, and what it holds once described.

`DatasetSpec` is what the parser makes of the mapping and what the graph model carries: the
kind (a registry entry), its path and options, the `derive:` transform and `dir`, frozen and
hashable. `mapping()` gives the mapping back (what `render` writes); `info` is what the files
hold (read once, when the graph is parsed); `load()` reads a split, and is the one place the
sample limit (--limit-samples) is applied.

The limit is what a training run reads: the first N samples of its training split, and of the
splits its monitors pass over (NNC's monitor pass, a training-time loss). Scores never are: the
per-epoch eval, `nncgan eval` and a classifier's test accuracy read the whole test split, so a
quick run is scored on the same images as a full one.
"""
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional, Tuple

from ..errors import DataError
from . import registry


def _frozen(v):
    if isinstance(v, dict):
        return tuple((str(k), _frozen(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    return v


def _written(v):
    """A frozen option back as YAML writes it: tuples as lists."""
    return [_written(x) for x in v] if isinstance(v, tuple) else v


@dataclass(frozen=True)
class DatasetSpec:
    kind: str                                  # a registry.KINDS entry: mnist, fashion-mnist, csv, folder
    path: Optional[str] = None                 # file kinds: the CSV file or the folder (absolute)
    options: Tuple[Tuple[str, Any], ...] = ()  # the kind's further keys as written, e.g. (("size", (1, 28, 28)),)
    derive: Tuple[Tuple[str, Any], ...] = ()   # the `derive:` mapping as written
    dir: Optional[str] = None                  # where a built-in dataset's files are (`dir:`)

    @classmethod
    def of(cls, kind, path=None, derive=None, dir=None, **options):
        """A spec made in code, as the mapping {kind's key: path or kind, **options, derive, dir}
        would make it; its files described now (DataError when they are not usable)."""
        k = registry.kind(kind)
        unknown = sorted(o for o in set(options) | ({"derive"} if derive else set()) if not k.takes(o))
        if unknown:
            raise DataError(f"dataset {kind} takes no option '{unknown[0]}' (its options: {', '.join(k.options) or 'none'})")
        spec = cls(kind, os.path.abspath(path) if path is not None else None,
                   tuple((o, _frozen(options[o])) for o in k.options if o in options),
                   _frozen(derive) if derive else (), dir)
        spec.info  # noqa: B018 -- described now: a DataError here, not at the first load
        return spec

    # ---- as written
    def option_dict(self):
        return {k: _written(v) for k, v in self.options}

    def derive_dict(self):
        return {k: _written(v) for k, v in self.derive}

    def mapping(self):
        """The `dataset:` mapping this spec was made from (paths made absolute): what `render` writes."""
        kind = registry.kind(self.kind)
        out = {kind.key: self.kind if kind.key == "name" else self.path}
        out.update(self.option_dict())
        if self.derive:
            out["derive"] = self.derive_dict()
        if self.dir is not None:
            out["dir"] = self.dir
        return out

    @property
    def name(self):
        """A one-line name for messages: 'mnist', 'mnist+downscale,factor=2', 'csv:/data/train.csv'."""
        if self.derive:
            from .derived import derivation
            return f"{self.kind}+{derivation(self.derive_dict()).key()}"
        if self.path is None:
            return self.kind
        opts = "&".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in self.options)
        return f"{self.kind}:{self.path}" + (f"?{opts}" if opts else "")

    # ---- described
    @cached_property
    def info(self):
        """registry's DatasetInfo of the files (a derived set's own); DataError when unusable."""
        info = registry.kind(self.kind).describe(self)
        if self.derive:
            from .derived import describe
            info = describe(info, self.derive_dict())
        return info

    variables = property(lambda self: self.info.variables)
    classes = property(lambda self: self.info.classes)
    images = property(lambda self: self.info.images)
    doc = property(lambda self: self.info.doc)

    @property
    def classifier(self):
        """(graph name, file) of the classifier graph that scores images of this dataset, or None."""
        return None if self.derive or self.path else registry.kind(self.kind).classifier

    def train_size(self):
        """Training samples when known without loading (`check`); None for derived and folder sets."""
        return None if self.derive else registry.kind(self.kind).train_size(self)

    # ---- read
    def load(self, split, data_dir=None, log=print, limit=None):
        """The split's samples; with `limit`, only the first `limit` samples read (before any
        `derive:`, so a derived set is made from them: strokes pairs halves of them)."""
        data = registry.kind(self.kind).read(self, split, data_dir or self.dir, log)
        if limit:
            from .samples import head
            data = head(data, limit, log, split)
        if self.derive:
            from .derived import derive
            data = derive(self.kind, self.derive_dict(), data, split, log)
        return data

    def limited(self, limit):
        """This dataset as a training run limited to `limit` samples reads it (its monitor pass)."""
        return Limited(self, limit) if limit else self

    def check_labels(self, data, label_classes):
        """Every label fed to a OneHot within its classes: `label_classes` is the graph's
        {variable: (classes, who reads it)} (Graph.label_classes)."""
        from .samples import check_labels
        check_labels(data, label_classes, self.name)


@dataclass(frozen=True)
class Limited:
    """A DatasetSpec read the first `limit` samples of each split: what a run's monitors read."""

    spec: DatasetSpec
    limit: int

    images = property(lambda self: self.spec.images)

    def load(self, split, data_dir=None, log=print):
        return self.spec.load(split, data_dir, log, limit=self.limit)


def resolve(dataset):
    """The DatasetSpec of `dataset`: a graph's spec as it is, or a built-in dataset's name."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    if isinstance(dataset, str) and dataset in registry.built_in_names():
        return DatasetSpec(dataset)
    raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(registry.built_in_names())}")


def keys():
    """Every key a `dataset:` mapping may hold."""
    return tuple(dict.fromkeys(("name", "dir") + registry.file_keys()
                               + tuple(o for k in registry.KINDS for o in k.options) + ("derive",)))


def from_mapping(node, base_dir=".", suggest=lambda word, options: "."):
    """(DatasetSpec or None, [(key or None, problem)]) of a `dataset:` mapping (keys checked by the caller).

    Paths are relative to `base_dir` (the graph file's folder). The files are described now
    (spec.info), so the graph's Inputs can be checked against their variables."""
    problems = []
    names = registry.built_in_names()
    given = [k for k in ("name",) + registry.file_keys() if k in node]
    if len(given) != 1:
        files = [f"'{k.key}' ({k.doc})" for k in registry.KINDS if k.key != "name"]
        problems.append((None, f"dataset needs exactly one of 'name' (built in: {', '.join(names)}), "
                               + ", ".join(files[:-1]) + f" or {files[-1]}"))
    paths = {}
    for key in ("dir",) + registry.file_keys():
        d = node.get(key)
        if key in node and not isinstance(d, str):
            problems.append((key, f"dataset {key} must be a path"))
        elif d is not None:  # relative to the graph file, like any path in a config file
            paths[key] = os.path.normpath(os.path.join(base_dir, os.path.expanduser(d)))
    kind = None
    if given == ["name"]:
        name = node["name"]
        if isinstance(name, str) and name in names:
            kind = registry.kind(name)
        else:
            problems.append(("name", f"unknown dataset '{name}'{suggest(name, names)} Known: {', '.join(names)}"))
    elif len(given) == 1 and given[0] in paths:
        kind = next(k for k in registry.KINDS if k.key == given[0])
    said = set()
    for k in node:  # a kind's options given to another kind: said once per kind
        owners = [o for o in registry.KINDS if o.takes(k)]
        built_in = all(o.key == "name" for o in owners)
        if not owners or kind in owners or (kind is None and given == ["name"] and built_in) or owners[0] in said:
            continue
        said.add(owners[0])
        problems.append((k, f"dataset {k} applies to a built-in dataset ("
                            + " or ".join(f"'name: {o.name}'" for o in owners) + ")" if built_in else
                         " and ".join(f"'{o}'" for o in owners[0].options) + f" apply only to '{owners[0].key}' datasets"))
    if problems or kind is None:
        return None, problems
    if "derive" in node:
        from .derived import derivation
        try:
            derivation(node["derive"])
        except DataError as e:
            return None, [("derive", f"dataset {e}")]
    spec = DatasetSpec(kind.name, paths.get(kind.key) if kind.key != "name" else None,
                       tuple((k, _frozen(node[k])) for k in kind.options if k in node),
                       _frozen(node["derive"]) if "derive" in node else (), paths.get("dir"))
    try:  # the files say which variables and shapes the Inputs may ask for
        spec.info
    except DataError as e:
        return None, [(kind.key, str(e))]
    return spec, []

"""What an executor reads besides its latents: dataset variables for `nncgan infer`.

An image-to-image executor (SRCNN's low-resolution image, pix2pix's edge map) reads a dataset
variable. `infer` takes it from the graph's dataset (by default its test split, the images a
run never trained on) or from a folder of images given with `--input [VAR=]DIR`; a pipeline
takes it from the stage before. Values are what training fed: images scaled to [0, 1].
"""
from pathlib import Path

import numpy as np

from .data.batches import to_batch
from .data.samples import length_of, sample_of, variables_of
from .errors import RunError
from .images import IMAGE_EXTENSIONS, ImageReader, image_files, to_unit
from .sampling import reads as needed  # {variable: shape}: the one definition of what an executor reads


def parse_inputs(texts, needs):
    """`--input` values ('DIR' or 'VAR=DIR') -> {variable: Path}; a bare DIR feeds the one variable needed."""
    out = {}
    for text in texts or ():
        var, sep, path = text.rpartition("=")
        if not sep:
            if len(needs) != 1:
                raise RunError(f"--input {text}: the executor reads {len(needs)} dataset variable(s) "
                               f"({', '.join(needs) or 'none'}); write --input VAR=DIR")
            var, path = needs[0], text
        if var not in needs:
            raise RunError(f"--input {text}: the executor reads no dataset variable '{var}' "
                           f"(it reads: {', '.join(needs) or 'none'})")
        out[var] = Path(path)
    return out


def from_folder(folder, shape):
    """Every image in `folder` (sorted by name), converted and resized to `shape` (C, H, W), in [0, 1]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"--input {folder}: no such folder")
    files = image_files(folder)
    if not files:
        raise RunError(f"--input {folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    reader = ImageReader(shape, resize=True)
    return to_unit(np.stack([reader.read(p) for p in files]))


def from_dataset(graph, variables, n, split="test", data_dir=None, seed=0, log=print):
    """`n` samples of `variables` from the graph's dataset split, chosen by `seed`, as training feeds them.

    Samples are read together (one index for all variables), so paired variables stay paired.
    """
    info = graph.dataset
    data = info.load(split, data_dir, log=log)  # file datasets have one split: all of it
    have = variables_of(data)
    missing = [v for v in variables if v not in have]
    if missing:
        raise RunError(f"dataset '{graph.dataset.name}' has no variable(s) {', '.join(missing)}")
    total = length_of(data)
    if total < 1:
        raise RunError(f"dataset '{graph.dataset.name}' ({split}) is empty")
    order = np.random.RandomState(seed).permutation(total)
    rows = [sample_of(data, int(order[i % total])) for i in range(n)]
    batch = to_batch(have, [np.stack([r[k] for r in rows]) for k in range(len(have))], info.images)
    return {v: batch[v] for v in variables}


def first_samples(data, variables, n, images):
    """The first `n` samples of `variables` (repeated when fewer), scaled as training feeds them."""
    have = variables_of(data)
    total = length_of(data)
    rows = [sample_of(data, i % total) for i in range(n)]
    batch = to_batch(have, [np.stack([r[k] for r in rows]) for k in range(len(have))], images)
    return {v: batch[v] for v in variables}


def for_infer(graph, executor, num, inputs=(), split="test", data_dir=None, seed=0, log=print):
    """(n, feed) for `nncgan infer`: --input folders when given, else `num` samples of the dataset split."""
    needs = needed(graph, executor)
    if not needs:
        if inputs:
            raise RunError("--input: this executor reads no dataset variable (it draws from latents only)")
        return num, {}
    folders = parse_inputs(inputs, sorted(needs))
    feed = {v: from_folder(d, needs[v]) for v, d in folders.items()}
    if feed:
        n = min([num] + [len(a) for a in feed.values()])
        feed = {v: a[:n] for v, a in feed.items()}
    else:
        n = num
    rest = [v for v in needs if v not in feed]
    if rest:
        feed.update(from_dataset(graph, rest, n, split, data_dir, seed, log))
    return n, feed


def first_samples_of_split(graph, variables, n, split="test", data_dir=None, log=print):
    """The first `n` samples of `variables` in the graph dataset's `split` (a fixed, reproducible set)."""
    info = graph.dataset
    data = info.load(split, data_dir, log=log)
    n = min(n, length_of(data))
    return first_samples(data, variables, n, info.images)

"""`nncgan infer`: images drawn from the last saved epoch of a run, as a tile (or a latent walk,
infer_latent.py), with what made them in the PNG's metadata. A run folder is opened by `run.Run`;
run_graph and load are kept for the code that imports them."""
from pathlib import Path

from .errors import RunError
from .runs import Loaded, Run  # noqa: F401  (Loaded: the result of load)


def run_graph(run):
    """The graph a run trained (its graph.yaml, paths resolved against the original file's folder)."""
    return Run(run).graph()


def load(run, n, executor=None, no_ema=False, graph=None):
    """The executor of `run` built for `n` samples with its last saved parameters (see Run.sampler)."""
    return Run(run, graph).sampler(n, executor, no_ema)


def check_images(graph, executor, n, what):
    """`n` images of the executor's network must fit in memory: refused before anything is built."""
    from .limits import memory_error
    ex = graph.executors.get(executor) if executor else graph.executor
    msg = memory_error(graph.networks[ex.network], n, what) if ex is not None else None
    if msg:
        raise RunError(msg)


def tile_path(run, label, seed, truncation):
    """RUN/infer/label_<L>_seed<S>.png (samples_seed<S>.png without a label); a truncated tile
    never replaces the plain one."""
    trunc = f"_trunc{truncation:g}" if truncation else ""
    return Path(run) / "infer" / (f"label_{label}_seed{seed}{trunc}.png" if label is not None
                                  else f"samples_seed{seed}{trunc}.png")


def infer(run=None, *, runs_dir="runs", context="auto", num=100, seed=0, label=None, out=None, executor=None,
          inputs=(), split="test", data_dir=None, truncation=None, no_ema=False, no_captions=False,
          interpolate=None, arithmetic=None, steps=10, interp="auto", labels=None, scale=None, say=print):
    """`nncgan infer`: `num` images of run `run` (default: the latest GAN run, said) as a tile at
    `out` (default: tile_path), one row per label for a conditional executor; or, with
    `interpolate` (two seeds) / `arithmetic` (three), a latent walk (infer_latent.py)."""
    import numpy as np
    from . import context as ctx, feeds
    from . import runs
    from .images import grid, row_captions, save_tile
    if out:
        from . import safeio
        safeio.check_target(out)  # a folder or device at --out: refused before any drawing
    run = runs.chosen(run, runs_dir, "drawing from", say=say)
    graph = run.graph()
    ctx.select(context)
    if not arithmetic:
        check_images(graph, executor, *((steps, "--steps") if interpolate else (num, "--num")))
    if interpolate or arithmetic:
        from .infer_latent import infer_latent
        loaded = run.sampler(steps if interpolate else 4, executor, no_ema)
        return infer_latent(loaded, interpolate=interpolate, arithmetic=arithmetic, label=label, labels=labels,
                            interp=interp, truncation=truncation, scale=scale, out=out, say=say)
    # Dataset variables the executor reads (an image-to-image network's input): --input or the split.
    n, feed = feeds.for_infer(graph, executor, num, inputs, split, data_dir, seed)
    loaded = run.sampler(n, executor, no_ema)
    sampler, folder, used_ema = loaded.sampler, loaded.folder, loaded.used_ema
    drawn = None
    if label is not None:
        sampler.check_label(label)
        drawn = np.full(n, label)
    elif sampler.conditional:
        drawn = np.arange(n) * sampler.classes // n  # one row per label, as the epoch tiles
    images = sampler.draw(drawn, np.random.RandomState(seed), truncation=truncation, feed=feed)
    out = Path(out) if out else tile_path(run, label, seed, truncation)
    rows, cols = grid(n)
    captions = None if no_captions or label is not None else row_captions(drawn, rows, cols)
    save_tile(images, out, rows, cols, row_labels=captions,
              info={"run": str(run), "epoch": folder.name, "label": label,
                    "seed": seed, "num": n, "ema": used_ema, "executor": sampler.executor.name,
                    "truncation": truncation if truncation else "none"})
    say(f"nncgan: {n} images{'' if label is None else f' of label {label}'} "
        f"from {folder}{' (EMA parameters)' if used_ema else ''} -> {out}")
    return out

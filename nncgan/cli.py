"""The `nncgan` command: check, train and infer. User errors exit 2 with a message, no traceback."""
import argparse
import logging
import os
import sys
from pathlib import Path

from .data.registry import built_in_names
from .errors import GraphError, NncganError, RunError
from .limits import MAX_BATCH, MAX_COUNT, MAX_EPOCHS, MAX_IMAGES, count, seed, truncation


def _quiet_nnabla():
    # nnabla calls logging.basicConfig(INFO) on import; configuring the root logger first keeps
    # its start-up chatter ("Initializing CPU extension...") off the user's terminal.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")


def _parse(path, base_dir=None):
    from .graph.parse import parse_graph
    return parse_graph(path, base_dir=base_dir)


def _parse_with_overrides(args):
    """The graph with its --set overrides applied, each printed; returns (graph, applied)."""
    from .graph import overrides
    graph, applied = overrides.load(args.graph, args.set)
    for line in overrides.describe(applied):
        print(f"nncgan: {line}")
    return graph, applied


def cmd_check(args):
    from .describe import describe
    from . import pipeline
    if pipeline.is_pipeline(args.graph):
        if args.set:
            raise RunError("--set applies to a graph; a pipeline's stages carry their own 'set:' lists")
        print(pipeline.check(args.graph))
        return 0
    graph = _parse_with_overrides(args)[0]
    from .train.loop import check_batch_fits
    check_batch_fits(graph)
    print(describe(graph))
    return 0


def cmd_render(args):
    from .graph.render import render
    from .graph.overrides import load
    graph, applied = load(args.graph, args.set)  # overrides are in the header, stdout stays YAML
    print(render(graph, applied), end="")
    return 0


def cmd_view(args):
    from .graph.overrides import describe, load
    from .view.html import view_page
    graph, applied = load(args.graph, args.set)
    from . import safeio
    from .view.html import default_out
    out = Path(args.out) if args.out else default_out(args.graph)
    safeio.write_text(out, view_page(graph, describe(applied)))
    print(f"nncgan: the graph '{graph.name}' as a picture -> {out}")
    return 0


def cmd_report(args):
    from .view.report import write_report
    from .pick import gan_run
    run = gan_run(args.run, args.runs_dir, "reporting", "RUN")
    out = write_report(run, args.out)
    print(f"nncgan: report of {run} -> {out}")
    return 0


def cmd_train(args):
    from . import run as runs
    if args.resume and args.set:
        raise RunError("--set cannot be used with --resume: a resumed run trains the graph it started "
                       "with (its graph.yaml); start a new run to change it")
    from .train import settings
    graph = _parse_with_overrides(args)[0]
    settings.env_alias(args)
    if args.resume:  # the run's own settings (epochs, data, log file, limits) unless given again
        resumed = Path(args.out) if args.out else runs.latest_run(args.runs_dir, graph.name)
        settings.resumed(args, runs.read_info(resumed))
    log = print
    if args.log_file:
        from .train.progress import file_log
        log = file_log(args.log_file)
    if args.batch_size:
        _set_batch_size(graph, args.batch_size)
    from .train import distributed
    if args.comm != "none":
        from .train.launch import launch_if_asked
        code = launch_if_asked(args, graph)  # --procs N > 1: this process starts N ranks and waits
        if code is not None:
            return code
    rank, size, _ = distributed.plan(args.comm)  # a --comm that cannot work stops here
    if size > 1:
        if args.comm == "nccl":
            distributed.require_cuda(args.context, size)
        if not args.out:
            raise RunError(f"training as {size} processes: name the run with --out DIR, so that all agree on it")
    if rank > 0:  # only rank 0 writes the run (and logs); the others train into a scratch copy
        args.quiet = True
        return distributed.train_other_rank(args, graph, lambda run, info: _train(args, graph, run, info,
                                                                                  lambda *a: None))
    if args.resume:
        if args.restart:
            raise RunError("--resume continues a run, --restart starts one again: give one of them")
        run = resumed
        info = runs.read_info(run)
        from .train.checkpoint import has_checkpoint, peek_partial
        if not has_checkpoint(run) and not peek_partial(run):  # a partial save (config.save_every) resumes too
            raise RunError(f"{run} has no saved epoch to resume (it stopped in epoch 1); start it again "
                           f"with: nncgan train {args.graph} --out {run} --restart")
        with runs.locked(run):
            return _train(args, graph, run, info, log)
    if args.restart and not args.out:
        raise RunError("--restart starts again the run named by --out DIR")
    if args.out:
        runs.check_out(args.out, args.restart)  # what cannot become the run: refused before loading data
    from .train import loop
    try:
        loop.load_data(graph, args.data_dir, log=log, limit_samples=args.limit_samples)  # under a batch: refused first
        with runs.claim(graph, args.out, args.runs_dir, restart=args.restart) as run:
            return _train(args, graph, run, None, log)
    finally:
        loop._PRELOADED.clear()


def _train(args, graph, run, info, log):
    from . import context, hints, run as runs
    from .train.loop import train
    from .train.settings import recorded
    if info is not None:
        # A resumed run keeps training the graph it started with, whatever happened to the file since.
        base = os.path.dirname(runs.field(info, "graph")) if runs.field(info, "graph") else str(run)
        graph = _parse(run / runs.GRAPH_COPY, base_dir=base)
        if args.batch_size:
            _set_batch_size(graph, args.batch_size)
        elif runs.field(info, "batch_size"):  # a damaged value is ignored: the graph's is used
            graph.config.batch_size = info["batch_size"]
        runs.update_info(run, status="running")
    else:
        runs.update_info(run, batch_size=graph.config.batch_size)
    runs.update_info(run, **recorded(args))
    if args.save_every:  # --save-every (or the run's own, on --resume) over config.save_every
        from .train.keep import option
        graph.config.save_every = option(args.save_every)
    from .train.distributed import setup
    backend = context.select(args.context, type_config=args.type_config)
    from .provenance import record
    prov = record(hints.argv(), backend)
    line = prov.pop("command")
    runs.update_info(run, **prov, commands=(info or {}).get("commands", []) + [line])
    comm = setup(args.comm, backend, type_config=args.type_config)
    log(f"nncgan: training {graph.path} in {run} on {backend}"
        + (f" (rank {comm.rank} of {comm.size} processes)" if comm.size > 1 else ""))
    from .train.progress import log_ending
    with log_ending(args.log_file if comm.writes else None, run):
        train(graph, run, max_epoch=args.epochs, resume=args.resume, data_dir=args.data_dir, quiet=args.quiet,
              log=log, evaluate=not args.no_eval, comm=comm, limit_samples=args.limit_samples,
              limit_iterations=args.limit_iterations)
    from .eval.classifier import is_classifier
    if not comm.writes:
        return 0
    if is_classifier(graph):
        print(f"nncgan: done; {hints.command('eval')} now reads generated images with it")
        return 0
    ex = graph.executor
    labelled = any(l.type == "Input" and l.settings.get("dataset") == "y" for l in graph.networks[ex.network].layers)
    print(f"nncgan: done; draw samples with: "
          f"{hints.command('infer', '--run', run, *(['--label', 7] if labelled else []))}")
    return 0


def _set_batch_size(graph, n):
    from .limits import memory_error
    for net in graph.networks.values():
        msg = memory_error(net, n, "--batch-size")
        if msg:
            raise RunError(msg)
    graph.config.batch_size = n


def _check_images(graph, executor, n, what):
    """`n` images of the executor's network must fit in memory: refused before anything is built."""
    from .limits import memory_error
    ex = graph.executors.get(executor) if executor else graph.executor
    msg = memory_error(graph.networks[ex.network], n, what) if ex is not None else None
    if msg:
        raise RunError(msg)


def cmd_infer(args):
    import numpy as np
    from . import context, feeds, inference
    from .images import grid, row_captions, save_tile
    if args.pipeline:
        return _infer_pipeline(args)
    if args.out:
        from . import safeio
        safeio.check_target(args.out)  # a folder or device at --out: refused before any drawing
    from .pick import gan_run
    run = gan_run(args.run, args.runs_dir, "drawing from")
    graph = inference.run_graph(run)
    context.select(args.context)
    if not args.arithmetic:
        _check_images(graph, args.executor, *((args.steps, "--steps") if args.interpolate else (args.num, "--num")))
    if args.interpolate or args.arithmetic:
        from .infer_latent import infer_latent
        loaded = inference.load(run, args.steps if args.interpolate else 4, args.executor, args.no_ema, graph)
        return infer_latent(args, run, loaded.folder, loaded.sampler, loaded.used_ema)
    # Dataset variables the executor reads (an image-to-image network's input): --input or the split.
    n, feed = feeds.for_infer(graph, args.executor, args.num, args.input, args.split, args.data_dir, args.seed)
    loaded = inference.load(run, n, args.executor, args.no_ema, graph)
    sampler, folder, used_ema = loaded.sampler, loaded.folder, loaded.used_ema
    labels = None
    if args.label is not None:
        sampler.check_label(args.label)
        labels = np.full(n, args.label)
    elif sampler.conditional:
        labels = np.arange(n) * sampler.classes // n  # one row per label, as the epoch tiles
    images = sampler.draw(labels, np.random.RandomState(args.seed), truncation=args.truncation, feed=feed)
    trunc = f"_trunc{args.truncation:g}" if args.truncation else ""  # never over the plain tile
    out = Path(args.out) if args.out else run / "infer" / (
        f"label_{args.label}_seed{args.seed}{trunc}.png" if args.label is not None
        else f"samples_seed{args.seed}{trunc}.png")
    rows, cols = grid(n)
    captions = None if args.no_captions or args.label is not None else row_captions(labels, rows, cols)
    save_tile(images, out, rows, cols, row_labels=captions,
              info={"run": str(run), "epoch": folder.name, "label": args.label,
                    "seed": args.seed, "num": n, "ema": used_ema, "executor": sampler.executor.name,
                    "truncation": args.truncation if args.truncation else "none"})
    print(f"nncgan: {n} images{'' if args.label is None else f' of label {args.label}'} "
          f"from {folder}{' (EMA parameters)' if used_ema else ''} -> {out}")
    return 0


def cmd_eval(args):
    from . import context
    from .eval import report
    context.select(args.context)
    run = args.run
    if run is None and (args.images_from == "generator" or args.dataset is None):
        from .pick import gan_run
        run = gan_run(None, args.runs_dir, "evaluating", "RUN")
    if run is not None and args.images_from == "generator" and report.is_classifier_run(run):
        print(report.classifier_test(run, args.data_dir))  # a classifier run: its test accuracy
        return 0
    result = report.evaluate(run, num=args.num, seed=args.seed, classifier=args.classifier,
                             runs_dirs=[args.runs_dir], source=args.images_from, dataset=args.dataset,
                             data_dir=args.data_dir, no_ema=args.no_ema)
    print(report.table(result))
    path = report.write_json(report.json_path(result), result)
    print(f"nncgan: wrote {path}")
    return 0


def _infer_pipeline(args):
    from . import context
    from .pipeline import infer_pipeline
    if args.run or args.executor or args.input:
        raise RunError("--run, --executor and --input name one run; a pipeline names its stages' runs "
                       "and executors in its file (override a stage's run with --stage NAME=RUN)")
    context.select(args.context)
    infer_pipeline(args.pipeline, num=args.num, seed=args.seed, label=args.label, out=args.out,
                   stage_runs=args.stage, no_ema=args.no_ema, truncation=args.truncation,
                   split=args.split, data_dir=args.data_dir)
    return 0


def _add_set(parser):
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="change a key of the graph, e.g. optimizers.Generator.solver.alpha=0.001 "
                             "(repeatable; list items by index: networks.Generator.layers.0.size=50)")


def cmd_runs(args):
    from .runs_table import collect, table
    print(table(collect(args.runs_dir)))
    return 0


def cmd_dataset_export(args):
    from .data.export import export_csv
    export_csv(args.dataset, args.dir, splits=args.split, limit=args.limit, data_dir=args.data_dir)
    return 0


def cmd_export(args):
    from .pick import gan_run
    run = gan_run(args.run, args.runs_dir, "exporting", "RUN")
    out = Path(args.out) if args.out else run / "export" / f"{run.name}.{args.format}"
    if args.format == "onnx":
        from .interop.onnx_export import export_onnx
        export_onnx(run, out, batch_size=args.batch_size)
    else:
        from .interop.nnp_export import export_nnp
        export_nnp(run, out, dataset_csv=args.dataset_csv, validation_csv=args.validation_csv,
                   batch_size=args.batch_size, max_epoch=args.max_epoch, monitors=not args.no_monitors)
    return 0


def cmd_import(args):
    from .interop.nnc_import import import_file
    import_file(args.file, args.out, name=args.name)
    return 0


class _Version(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .provenance import version_line
        print(version_line())
        parser.exit()


def cmd_graphs(args):
    from .bundled import listing
    print(listing())
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="nncgan", description="Neural Network Console style GANs as YAML graphs, on NNabla.")
    p.add_argument("--version", action=_Version, help="print nncgan's version (and git commit) and exit")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("graphs", help="list the sample graphs that come with nncgan (train one by name)")
    g.set_defaults(func=cmd_graphs)

    c = sub.add_parser("check", help="validate a graph and show its networks, shared scopes and optimizers")
    c.add_argument("graph")
    _add_set(c)
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("render", help="print the graph fully resolved: blocks expanded, defaults filled")
    r.add_argument("graph")
    _add_set(r)
    r.set_defaults(func=cmd_render)

    v = sub.add_parser("view", help="draw the graph as a self-contained HTML page (SVG), as NNC's editor shows it")
    v.add_argument("graph")
    v.add_argument("-o", "--out", help="the HTML file to write (default: beside the graph file, "
                                       "GRAPH.html; a bundled sample's here)")
    _add_set(v)
    v.set_defaults(func=cmd_view)

    t = sub.add_parser("train", help="train a graph; each run is a folder under runs/")
    t.add_argument("graph")
    t.add_argument("--epochs", type=count(1, MAX_EPOCHS), help="train up to this many epochs (default: config.max_epoch)")
    t.add_argument("--batch-size", type=count(1, MAX_BATCH))
    t.add_argument("--context", choices=("auto", "cpu", "cudnn"), default="auto")
    t.add_argument("--out", help="the run folder (default: runs/<time>-<graph name>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out (or the latest run of this graph)")
    t.add_argument("--restart", action="store_true",
                   help="start again the run in --out that has no complete epoch (removes only nncgan's files)")
    t.add_argument("--data-dir", help="directory holding the dataset files (e.g. the four MNIST .gz files)")
    t.add_argument("--runs-dir", default="runs", help=argparse.SUPPRESS)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--log-file", metavar="FILE", help="also append each epoch's line, time-stamped, to FILE")
    t.add_argument("--limit-samples", type=int, metavar="N",
                   help="a quick run: train on the first N training samples only (recorded in run.json)")
    t.add_argument("--limit-iterations", type=int, metavar="N",
                   help="a quick run: at most N iterations per epoch (recorded in run.json)")
    t.add_argument("--save-every", type=_save_every, metavar="N|Mm",
                   help="also save the epoch in progress every N iterations or M minutes (e.g. 500 or 5m; "
                        "config.save_every), which --resume continues from exactly (recorded in run.json)")
    t.add_argument("--no-eval", action="store_true",
                   help="do not score each epoch's samples with a trained classifier (nncgan eval's numbers)")
    t.add_argument("--type-config", choices=("float", "half"), default="float",
                   help="half: compute in float16 where NNabla can (for CUDA GPUs; see docs/performance.md)")
    t.add_argument("--procs", default=os.environ.get("NNCGAN_PROCS", "auto"), metavar="N|auto",
                   help="data-parallel MPI processes started here, sharing each (global) batch; auto: one per "
                        "core (1 on a GPU); see docs/performance.md")
    t.add_argument("--comm", choices=("auto", "none", "mpi", "nccl"), default="auto",
                   help="how processes started by `mpiexec -n N` all-reduce: mpi (mpi4py, host memory; auto's "
                        "choice) or nccl (NNabla's GPU communicator, where installed); see docs/performance.md")
    _add_set(t)
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("infer", help="draw images from the last saved epoch of a run, or run a pipeline file")
    i.add_argument("pipeline", nargs="?", help="a pipeline file: several runs chained, each stage's images "
                                               "feeding the next (see docs/gan_zoo.md)")
    i.add_argument("--executor", help="the executor (runtime network) to run (default: the graph's first)")
    i.add_argument("--input", action="append", default=[], metavar="[VAR=]DIR",
                   help="images fed to the executor's dataset variable VAR (e.g. SRCNN's low-resolution "
                        "image), resized to its shape; default: samples of the dataset's --split")
    i.add_argument("--split", default="test", choices=("train", "test"),
                   help="the dataset split the executor's dataset variables are drawn from (default test)")
    i.add_argument("--data-dir", help="directory holding the dataset files")
    i.add_argument("--stage", action="append", default=[], metavar="NAME=RUN",
                   help="with a pipeline: the run folder of stage NAME (default: the file's run:)")
    i.add_argument("--label", type=int, help="the class to draw (conditional graphs)")
    i.add_argument("--run", help="the run folder (default: the most recent run)")
    i.add_argument("--num", type=count(1, MAX_IMAGES), default=100, help="number of images (default 100, a 10x10 tile)")
    i.add_argument("--seed", type=seed, default=0)
    i.add_argument("--out", help="the PNG to write (default: RUN/infer/label_<L>_seed<S>.png)")
    i.add_argument("--context", choices=("auto", "cpu", "cudnn"), default="auto")
    i.add_argument("--truncation", type=truncation, metavar="T",
                   help="redraw latent values beyond +-T until within (fewer, more typical images)")
    i.add_argument("--no-ema", action="store_true",
                   help="draw with the trained parameters, not their average (runs with config.ema)")
    i.add_argument("--interpolate", nargs=2, type=seed, metavar=("SEED1", "SEED2"),
                   help="a strip of images walking from SEED1's latent code to SEED2's")
    i.add_argument("--steps", type=count(1, MAX_IMAGES), default=10, help="images in the --interpolate strip (default 10)")
    i.add_argument("--interp", choices=("auto", "slerp", "linear"), default="auto",
                   help="auto: slerp for Normal latents, linear for Uniform ones")
    i.add_argument("--arithmetic", nargs=3, type=seed, metavar=("S1", "S2", "S3"),
                   help="z1 - z2 + z3 of these seeds' codes, shown with its three sources")
    i.add_argument("--labels", metavar="A,B,C[,R]", help="with --arithmetic: a label per code (and the result)")
    i.add_argument("--scale", type=count(1, 16), metavar="N",
                   help="with --interpolate/--arithmetic: enlarge N times, nearest (default: cells of 56 px "
                        "or more, 2 for 28 px digits)")
    i.add_argument("--no-captions", action="store_true",
                   help="no label caption left of each row (a pure grid, for tools that slice cells)")
    i.add_argument("--runs-dir", default="runs", help=argparse.SUPPRESS)
    i.set_defaults(func=cmd_infer)

    v = sub.add_parser("eval", help="sample quality of a run, read by a trained classifier: label accuracy, "
                                     "Frechet distance, diversity, mode collapse")
    v.add_argument("run", nargs="?", help="the run folder (default: the most recent GAN run)")
    v.add_argument("--num", type=count(1, MAX_IMAGES), default=100, help="images per label (default 100)")
    v.add_argument("--seed", type=seed, default=0)
    v.add_argument("--classifier", metavar="RUN", help="the classifier run to read images with (default: the "
                                                          "latest finished run of graphs/classifier_<dataset>.yaml)")
    v.add_argument("--images-from", choices=("generator", "test", "repeat"), default="generator",
                   help="score the run's images (default), or real test images as if generated (test), or one "
                        "test image repeated (repeat): checks of the numbers themselves")
    v.add_argument("--dataset", choices=built_in_names(),
                   help="with --images-from test|repeat and no RUN: whose test images")
    v.add_argument("--no-ema", action="store_true", help="draw with the trained parameters, not their average")
    v.add_argument("--data-dir", help="directory holding the dataset files")
    v.add_argument("--context", choices=("auto", "cpu", "cudnn"), default="auto")
    v.add_argument("--runs-dir", default="runs", help="where runs and classifier runs are looked for")
    v.set_defaults(func=cmd_eval)

    rp = sub.add_parser("report", help="one HTML page of a run: curves, every epoch's tile, eval numbers, graph")
    rp.add_argument("run", nargs="?", help="the run folder (default: the most recent run)")
    rp.add_argument("-o", "--out", help="the HTML file to write (default: RUN/report.html)")
    rp.add_argument("--runs-dir", default="runs", help=argparse.SUPPRESS)
    rp.set_defaults(func=cmd_report)

    r = sub.add_parser("runs", help="the runs under runs/, newest first: epochs, last losses, status")
    r.add_argument("--runs-dir", default="runs", help="the folder holding the runs (default: runs)")
    r.set_defaults(func=cmd_runs)

    x = sub.add_parser("export", help="a run as an NNP file for nnabla_cli/NNC, or its executor as ONNX")
    x.add_argument("run", nargs="?", help="the run folder (default: the most recent run)")
    x.add_argument("--format", choices=("nnp", "onnx"), default="nnp")
    x.add_argument("-o", "--out", help="the file to write (default: RUN/export/<run>.<format>)")
    x.add_argument("--dataset-csv", metavar="CSV", help="NNC CSV file of the Training dataset (nnp)")
    x.add_argument("--validation-csv", metavar="CSV", help="NNC CSV file of the Validation dataset (nnp)")
    x.add_argument("--batch-size", type=count(1, MAX_BATCH), help="default: the graph's config.batch_size")
    x.add_argument("--max-epoch", type=count(1, MAX_EPOCHS), help="training_config.max_epoch (nnp; default: the graph's)")
    x.add_argument("--no-monitors", action="store_true", help="leave out NNC's train/valid error monitors (nnp)")
    x.add_argument("--runs-dir", default="runs", help=argparse.SUPPRESS)
    x.set_defaults(func=cmd_export)

    m = sub.add_parser("import", help="an NNC project (.sdcproj) or NNP/.nntxt as an nncgan graph")
    m.add_argument("file")
    m.add_argument("-o", "--out", required=True, help="the graph YAML to write")
    m.add_argument("--name", help="the graph's name (default: the file's stem)")
    m.set_defaults(func=cmd_import)

    d = sub.add_parser("dataset", help="dataset tools").add_subparsers(dest="action", required=True)
    e = d.add_parser("export", help="write a built-in dataset as PNGs + NNC CSV files (x:image,y:label)")
    e.add_argument("dataset", help=" or ".join(built_in_names()))
    e.add_argument("dir", help="output folder")
    e.add_argument("--split", nargs="+", choices=("train", "test"), default=["train", "test"])
    e.add_argument("--limit", type=count(1, MAX_COUNT), help="the first N samples of each split only")
    e.add_argument("--data-dir", help="directory holding the dataset files")
    e.set_defaults(func=cmd_dataset_export)
    return p


def _save_every(text):
    from .train.keep import option
    try:
        option(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip()


def main(argv=None):
    try:  # numbers are range-checked by their argparse types (nncgan.limits): a usage error, exit 2
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return e.code
    from .hints import invoked
    invoked(sys.argv[1:] if argv is None else argv)
    from .bundled import resolve
    for name in ("graph", "pipeline"):  # a sample graph by name: nncgan train cgan_mnist
        if getattr(args, name, None):
            setattr(args, name, resolve(getattr(args, name)))
    for name in ("epochs", "batch_size", "num", "limit", "max_epoch", "steps", "limit_samples", "limit_iterations"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            print(f"nncgan: error: --{name.replace('_', '-')} must be at least 1, got {v}", file=sys.stderr)
            return 2
    t = getattr(args, "truncation", None)
    if t is not None and not 0 < t < float("inf"):
        print(f"nncgan: error: --truncation must be a positive number, got {t}", file=sys.stderr)
        return 2
    _quiet_nnabla()
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --procs N re-launches
    if args.command == "train":
        from .train.launch import as_rank
        return as_rank(args, _run)  # one process: just _run; under mpiexec: leaving together
    return _run(args)


def _run(args):
    try:
        return args.func(args)
    except GraphError as e:
        print(f"nncgan: {len(e.problems)} problem(s) in the graph:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return e.exit_code
    except NncganError as e:
        print(f"nncgan: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("nncgan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nncgan check ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `nncgan` command: check, train and infer. User errors exit 2 with a message, no traceback."""
import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import GraphError, NncganError, RunError


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
    print(describe(_parse_with_overrides(args)[0]))
    return 0


def cmd_render(args):
    from .graph.render import render
    from .graph.overrides import load
    graph, applied = load(args.graph, args.set)  # overrides are in the header, stdout stays YAML
    print(render(graph, applied), end="")
    return 0


def cmd_train(args):
    from . import run as runs
    if args.resume and args.set:
        raise RunError("--set cannot be used with --resume: a resumed run trains the graph it started "
                       "with (its graph.yaml); start a new run to change it")
    log = print
    if args.log_file:
        from .train.progress import file_log
        log = file_log(args.log_file)
    graph = _parse_with_overrides(args)[0]
    if args.batch_size:
        graph.config.batch_size = args.batch_size
    from .train import distributed
    rank, size, _ = distributed.plan(args.comm)  # a --comm that cannot work stops here
    if size > 1:
        distributed.require_cuda(args.context, size)
        if not args.out:
            raise RunError(f"training as {size} processes: name the run with --out DIR, so that all agree on it")
    if rank > 0:  # only rank 0 writes the run (and logs); the others train into a scratch copy
        args.quiet = True
        return distributed.train_other_rank(args, graph, lambda run, info: _train(args, graph, run, info,
                                                                                  lambda *a: None))
    if args.resume:
        run = Path(args.out) if args.out else runs.latest_run(args.runs_dir, graph.name)
        info = runs.read_info(run)
        with runs.locked(run):
            return _train(args, graph, run, info, log)
    run = runs.new_run(graph, args.out, args.runs_dir)
    with runs.locked(run):
        return _train(args, graph, run, None, log)


def _train(args, graph, run, info, log):
    from . import context, run as runs
    from .train.loop import train
    if info is not None:
        # A resumed run keeps training the graph it started with, whatever happened to the file since.
        base = os.path.dirname(info["graph"]) if info.get("graph") else str(run)
        graph = _parse(run / runs.GRAPH_COPY, base_dir=base)
        if args.batch_size:
            graph.config.batch_size = args.batch_size
        elif info.get("batch_size"):
            graph.config.batch_size = info["batch_size"]
        runs.update_info(run, status="running")
    else:
        runs.update_info(run, batch_size=graph.config.batch_size)
    from .train.distributed import setup
    backend = context.select(args.context, type_config=args.type_config)
    comm = setup(args.comm, backend, type_config=args.type_config)
    log(f"nncgan: training {graph.path} in {run} on {backend}"
        + (f" (rank {comm.rank} of {comm.size} processes)" if comm.size > 1 else ""))
    train(graph, run, max_epoch=args.epochs, resume=args.resume, data_dir=args.data_dir, quiet=args.quiet,
          log=log, comm=comm)
    if comm.writes:
        print(f"nncgan: done; draw samples with: nncgan infer --run {run} --label 7")
    return 0


def cmd_infer(args):
    import numpy as np
    import nnabla as nn
    from . import context, run as runs
    from .images import grid, save_tile
    from .sampling import Sampler
    from .train import checkpoint, ema
    run = Path(args.run) if args.run else runs.latest_run(args.runs_dir)
    info = runs.read_info(run)
    graph = _parse(run / runs.GRAPH_COPY, base_dir=os.path.dirname(info.get("graph", str(run))))
    context.select(args.context)
    nn.clear_parameters()
    folder = checkpoint.latest(run)
    sampler = Sampler(graph, args.num)  # built first, so load() checks the saved shapes against it
    checkpoint.load(run)
    used_ema = False if args.no_ema else ema.load_into_parameters(folder)
    labels = None
    if args.label is not None:
        sampler.check_label(args.label)
        labels = np.full(args.num, args.label)
    elif sampler.conditional:
        labels = np.arange(args.num) % sampler.classes
    images = sampler.draw(labels, np.random.RandomState(args.seed), truncation=args.truncation)
    out = Path(args.out) if args.out else run / "infer" / (
        f"label_{args.label}_seed{args.seed}.png" if args.label is not None else f"samples_seed{args.seed}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = grid(args.num)
    save_tile(images, out, rows, cols, info={"run": str(run), "epoch": folder.name, "label": args.label,
                                             "seed": args.seed, "num": args.num, "ema": used_ema,
                                             "truncation": args.truncation if args.truncation else "none"})
    print(f"nncgan: {args.num} images{'' if args.label is None else f' of label {args.label}'} "
          f"from {folder}{' (EMA parameters)' if used_ema else ''} -> {out}")
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
    from . import run as runs
    run = Path(args.run) if args.run else runs.latest_run(args.runs_dir)
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


def build_parser():
    p = argparse.ArgumentParser(prog="nncgan", description="Neural Network Console style GANs as YAML graphs, on NNabla.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="validate a graph and show its networks, shared scopes and optimizers")
    c.add_argument("graph")
    _add_set(c)
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("render", help="print the graph fully resolved: blocks expanded, defaults filled")
    r.add_argument("graph")
    _add_set(r)
    r.set_defaults(func=cmd_render)

    t = sub.add_parser("train", help="train a graph; each run is a folder under runs/")
    t.add_argument("graph")
    t.add_argument("--epochs", type=int, help="train up to this many epochs (default: config.max_epoch)")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--context", choices=("auto", "cpu", "cudnn"), default="auto")
    t.add_argument("--out", help="the run folder (default: runs/<time>-<graph name>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out (or the latest run of this graph)")
    t.add_argument("--data-dir", help="directory holding the dataset files (e.g. the four MNIST .gz files)")
    t.add_argument("--runs-dir", default="runs", help=argparse.SUPPRESS)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--log-file", metavar="FILE", help="also append each epoch's line, time-stamped, to FILE")
    t.add_argument("--type-config", choices=("float", "half"), default="float",
                   help="half: compute in float16 where NNabla can (for CUDA GPUs; see docs/performance.md)")
    t.add_argument("--comm", choices=("auto", "none", "nccl"), default="auto",
                   help="data-parallel over GPUs under `mpirun -n N` (nccl; auto: when mpirun started this "
                        "process); see docs/performance.md")
    _add_set(t)
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("infer", help="draw images from the last saved epoch of a run")
    i.add_argument("--label", type=int, help="the class to draw (conditional graphs)")
    i.add_argument("--run", help="the run folder (default: the most recent run)")
    i.add_argument("--num", type=int, default=100, help="number of images (default 100, a 10x10 tile)")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--out", help="the PNG to write (default: RUN/infer/label_<L>_seed<S>.png)")
    i.add_argument("--context", choices=("auto", "cpu", "cudnn"), default="auto")
    i.add_argument("--truncation", type=float, metavar="T",
                   help="redraw latent values beyond +-T until within (fewer, more typical images)")
    i.add_argument("--no-ema", action="store_true",
                   help="draw with the trained parameters, not their average (runs with config.ema)")
    i.add_argument("--runs-dir", default="runs", help=argparse.SUPPRESS)
    i.set_defaults(func=cmd_infer)

    r = sub.add_parser("runs", help="the runs under runs/, newest first: epochs, last losses, status")
    r.add_argument("--runs-dir", default="runs", help="the folder holding the runs (default: runs)")
    r.set_defaults(func=cmd_runs)

    x = sub.add_parser("export", help="a run as an NNP file for nnabla_cli/NNC, or its executor as ONNX")
    x.add_argument("run", nargs="?", help="the run folder (default: the most recent run)")
    x.add_argument("--format", choices=("nnp", "onnx"), default="nnp")
    x.add_argument("-o", "--out", help="the file to write (default: RUN/export/<run>.<format>)")
    x.add_argument("--dataset-csv", metavar="CSV", help="NNC CSV file of the Training dataset (nnp)")
    x.add_argument("--validation-csv", metavar="CSV", help="NNC CSV file of the Validation dataset (nnp)")
    x.add_argument("--batch-size", type=int, help="default: the graph's config.batch_size")
    x.add_argument("--max-epoch", type=int, help="training_config.max_epoch (nnp; default: the graph's)")
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
    e.add_argument("dataset", help="mnist or fashion-mnist")
    e.add_argument("dir", help="output folder")
    e.add_argument("--split", nargs="+", choices=("train", "test"), default=["train", "test"])
    e.add_argument("--limit", type=int, help="the first N samples of each split only")
    e.add_argument("--data-dir", help="directory holding the dataset files")
    e.set_defaults(func=cmd_dataset_export)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("epochs", "batch_size", "num", "limit", "max_epoch"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            print(f"nncgan: error: --{name.replace('_', '-')} must be at least 1, got {v}", file=sys.stderr)
            return 2
    t = getattr(args, "truncation", None)
    if t is not None and not 0 < t < float("inf"):
        print(f"nncgan: error: --truncation must be a positive number, got {t}", file=sys.stderr)
        return 2
    _quiet_nnabla()
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

"""The `nncgan` command: its arguments, and each command handed to the library function that does it.

User errors exit 2 with a message, no traceback. Numbers are range-checked by their argparse types
(nncgan.limits): a bad one is a usage error naming the option, before anything runs."""
import argparse
import logging
import os
import sys

from .context import CHOICES as CONTEXTS
from .errors import GraphError, NncganError
from .limits import MAX_BATCH, MAX_COUNT, MAX_EPOCHS, MAX_IMAGES, count, procs, seed, truncation
from .train.distributed import CHOICES as COMMS


def _quiet_nnabla():
    # nnabla calls logging.basicConfig(INFO) on import; configuring the root logger first keeps
    # its start-up chatter ("Initializing CPU extension...") off the user's terminal.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")


# ---- the commands: each one library call with plain arguments


def cmd_graphs(args):
    from .bundled import listing
    print(listing())


def cmd_check(args):
    from .describe import check
    check(args.graph, args.set)


def cmd_render(args):
    from .graph.overrides import load
    from .graph.render import render
    print(render(*load(args.graph, args.set)), end="")  # overrides are in the header, stdout stays YAML


def cmd_view(args):
    from .view.html import write_view
    write_view(args.graph, args.set, args.out)


def cmd_train(args):
    from .train.start import TrainOptions, train
    options = TrainOptions(**{k: getattr(args, k) for k in TrainOptions.__dataclass_fields__})
    return train(options)


def cmd_infer(args):
    if args.pipeline:
        from .pipeline import infer_command
        infer_command(args.pipeline, run=args.run, executor=args.executor, inputs=args.input,
                      context=args.context, num=args.num, seed=args.seed, label=args.label, out=args.out,
                      stage_runs=args.stage, no_ema=args.no_ema, truncation=args.truncation, split=args.split,
                      data_dir=args.data_dir)
        return
    from .inference import infer
    infer(args.run, runs_dir=args.runs_dir, context=args.context, num=args.num, seed=args.seed, label=args.label,
          out=args.out, executor=args.executor, inputs=args.input, split=args.split, data_dir=args.data_dir,
          truncation=args.truncation, no_ema=args.no_ema, no_captions=args.no_captions,
          interpolate=args.interpolate, arithmetic=args.arithmetic, steps=args.steps, interp=args.interp,
          labels=args.labels, scale=args.scale)


def cmd_eval(args):
    from .eval.report import run_eval
    run_eval(args.run, runs_dir=args.runs_dir, context=args.context, num=args.num, seed=args.seed,
             classifier=args.classifier, source=args.images_from, dataset=args.dataset, data_dir=args.data_dir,
             no_ema=args.no_ema)


def cmd_report(args):
    from .view.report import report
    report(args.run, args.runs_dir, args.out)


def cmd_runs(args):
    from .runs_table import collect, table
    print(table(collect(args.runs_dir)))


def cmd_export(args):
    from .interop.export import export_run
    export_run(args.run, runs_dir=args.runs_dir, format=args.format, out=args.out, dataset_csv=args.dataset_csv,
               validation_csv=args.validation_csv, batch_size=args.batch_size, max_epoch=args.max_epoch,
               monitors=not args.no_monitors)


def cmd_import(args):
    from .interop.nnc_import import import_file
    import_file(args.file, args.out, name=args.name)


def cmd_dataset_export(args):
    from .data.export import export_csv
    export_csv(args.dataset, args.dir, splits=args.split, limit=args.limit, data_dir=args.data_dir)


# ---- the arguments


class _Version(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .provenance import version_line
        print(version_line())
        parser.exit()


def _graph(text):
    """A graph or pipeline file; a bundled sample by name (nncgan train cgan_mnist)."""
    from .bundled import resolve
    return resolve(text)


def _save_every(text):
    from .train.keep import option
    try:
        option(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip()


def _option(*flags, **kw):
    """A parser holding one shared option, for subcommands to take as a parent."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(*flags, **kw)
    return p


RUNS_DIR = _option("--runs-dir", default="runs", help=argparse.SUPPRESS)
RUNS_DIR_SHOWN = _option("--runs-dir", default="runs", help="the folder holding the runs (default: runs)")
DATA_DIR = _option("--data-dir", help="directory holding the dataset files (e.g. the four MNIST .gz files)")
CONTEXT = _option("--context", choices=CONTEXTS, default="auto",
                  help="auto: NNabla's CUDA/cuDNN extension when installed, else the CPU")
SET = _option("--set", action="append", default=[], metavar="PATH=VALUE",
              help="change a key of the graph, e.g. optimizers.Generator.solver.alpha=0.001 "
                   "(repeatable; list items by index: networks.Generator.layers.0.size=50)")


def build_parser():
    from .data.registry import built_in_names
    p = argparse.ArgumentParser(prog="nncgan", description="Neural Network Console style GANs as YAML graphs, on NNabla.")
    p.add_argument("--version", action=_Version, help="print nncgan's version (and git commit) and exit")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, func, parents=(), **kw):
        c = sub.add_parser(name, parents=list(parents), **kw)
        c.set_defaults(func=func)
        return c

    command("graphs", cmd_graphs, help="list the sample graphs that come with nncgan (train one by name)")

    c = command("check", cmd_check, [SET], help="validate a graph and show its networks, shared scopes and optimizers")
    c.add_argument("graph", type=_graph)

    r = command("render", cmd_render, [SET], help="print the graph fully resolved: blocks expanded, defaults filled")
    r.add_argument("graph", type=_graph)

    v = command("view", cmd_view, [SET],
                help="draw the graph as a self-contained HTML page (SVG), as NNC's editor shows it")
    v.add_argument("graph", type=_graph)
    v.add_argument("-o", "--out", help="the HTML file to write (default: beside the graph file, "
                                       "GRAPH.html; a bundled sample's here)")

    t = command("train", cmd_train, [CONTEXT, DATA_DIR, RUNS_DIR, SET],
                help="train a graph; each run is a folder under runs/")
    t.add_argument("graph", type=_graph)
    t.add_argument("--epochs", type=count(1, MAX_EPOCHS), help="train up to this many epochs (default: config.max_epoch)")
    t.add_argument("--batch-size", type=count(1, MAX_BATCH))
    t.add_argument("--out", help="the run folder (default: runs/<time>-<graph name>)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out (or the latest run of this graph file); it trains its own "
                        "graph.yaml, whatever happened to the file since")
    t.add_argument("--restart", action="store_true",
                   help="start again the run in --out that has no complete epoch (removes only nncgan's files)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--log-file", metavar="FILE", help="also append each epoch's line, time-stamped, to FILE")
    t.add_argument("--limit-samples", type=count(1, MAX_COUNT), metavar="N",
                   help="a quick run: train on the first N training samples only (recorded in run.json)")
    t.add_argument("--limit-iterations", type=count(1, MAX_COUNT), metavar="N",
                   help="a quick run: at most N iterations per epoch (recorded in run.json)")
    t.add_argument("--save-every", type=_save_every, metavar="N|Mm",
                   help="also save the epoch in progress every N iterations or M minutes (e.g. 500 or 5m; "
                        "config.save_every), which --resume continues from exactly (recorded in run.json)")
    t.add_argument("--no-eval", action="store_true",
                   help="do not score each epoch's samples with a trained classifier (nncgan eval's numbers)")
    t.add_argument("--type-config", choices=("float", "half"), default="float",
                   help="half: compute in float16 where NNabla can (for CUDA GPUs; see docs/performance.md)")
    t.add_argument("--procs", type=procs, default=os.environ.get("NNCGAN_PROCS", "auto"), metavar="N|auto",
                   help="data-parallel MPI processes started here, sharing each (global) batch; auto: one per "
                        "core (1 on a GPU); see docs/performance.md")
    t.add_argument("--comm", choices=COMMS, default="auto",
                   help="how processes started by `mpiexec -n N` all-reduce: mpi (mpi4py, host memory; auto's "
                        "choice) or nccl (NNabla's GPU communicator, where installed); see docs/performance.md")

    i = command("infer", cmd_infer, [CONTEXT, DATA_DIR, RUNS_DIR],
                help="draw images from the last saved epoch of a run, or run a pipeline file")
    i.add_argument("pipeline", nargs="?", type=_graph, help="a pipeline file: several runs chained, each stage's "
                                                            "images feeding the next (see docs/gan_zoo.md)")
    i.add_argument("--executor", help="the executor (runtime network) to run (default: the graph's first)")
    i.add_argument("--input", action="append", default=[], metavar="[VAR=]DIR",
                   help="images fed to the executor's dataset variable VAR (e.g. SRCNN's low-resolution "
                        "image), resized to its shape; default: samples of the dataset's --split")
    i.add_argument("--split", default="test", choices=("train", "test"),
                   help="the dataset split the executor's dataset variables are drawn from (default test)")
    i.add_argument("--stage", action="append", default=[], metavar="NAME=RUN",
                   help="with a pipeline: the run folder of stage NAME (default: the file's run:)")
    i.add_argument("--label", type=int, help="the class to draw (conditional graphs)")
    i.add_argument("--run", help="the run folder (default: the most recent GAN run)")
    i.add_argument("--num", type=count(1, MAX_IMAGES), default=100, help="number of images (default 100, a 10x10 tile)")
    i.add_argument("--seed", type=seed, default=0)
    i.add_argument("--out", help="the PNG to write (default: RUN/infer/label_<L>_seed<S>.png)")
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

    e = command("eval", cmd_eval, [CONTEXT, DATA_DIR, RUNS_DIR_SHOWN],
                help="sample quality of a run, read by a trained classifier: label accuracy, "
                     "Frechet distance, diversity, mode collapse")
    e.add_argument("run", nargs="?", help="the run folder (default: the most recent GAN run)")
    e.add_argument("--num", type=count(1, MAX_IMAGES), default=100, help="images per label (default 100)")
    e.add_argument("--seed", type=seed, default=0)
    e.add_argument("--classifier", metavar="RUN", help="the classifier run to read images with (default: the "
                                                          "latest finished run of graphs/classifier_<dataset>.yaml)")
    e.add_argument("--images-from", choices=("generator", "test", "repeat"), default="generator",
                   help="score the run's images (default), or real test images as if generated (test), or one "
                        "test image repeated (repeat): checks of the numbers themselves")
    e.add_argument("--dataset", choices=built_in_names(),
                   help="with --images-from test|repeat and no RUN: whose test images")
    e.add_argument("--no-ema", action="store_true", help="draw with the trained parameters, not their average")

    rp = command("report", cmd_report, [RUNS_DIR],
                 help="one HTML page of a run: curves, every epoch's tile, eval numbers, graph")
    rp.add_argument("run", nargs="?", help="the run folder (default: the most recent GAN run)")
    rp.add_argument("-o", "--out", help="the HTML file to write (default: RUN/report.html)")

    command("runs", cmd_runs, [RUNS_DIR_SHOWN], help="the runs under runs/, newest first: epochs, last losses, status")

    x = command("export", cmd_export, [RUNS_DIR], help="a run as an NNP file for nnabla_cli/NNC, or its executor as ONNX")
    x.add_argument("run", nargs="?", help="the run folder (default: the most recent GAN run)")
    x.add_argument("--format", choices=("nnp", "onnx"), default="nnp")
    x.add_argument("-o", "--out", help="the file to write (default: RUN/export/<run>.<format>)")
    x.add_argument("--dataset-csv", metavar="CSV", help="NNC CSV file of the Training dataset (nnp)")
    x.add_argument("--validation-csv", metavar="CSV", help="NNC CSV file of the Validation dataset (nnp)")
    x.add_argument("--batch-size", type=count(1, MAX_BATCH), help="default: the graph's config.batch_size")
    x.add_argument("--max-epoch", type=count(1, MAX_EPOCHS), help="training_config.max_epoch (nnp; default: the graph's)")
    x.add_argument("--no-monitors", action="store_true", help="leave out NNC's train/valid error monitors (nnp)")

    m = command("import", cmd_import, help="an NNC project (.sdcproj) or NNP/.nntxt as an nncgan graph")
    m.add_argument("file")
    m.add_argument("-o", "--out", required=True, help="the graph YAML to write")
    m.add_argument("--name", help="the graph's name (default: the file's stem)")

    d = sub.add_parser("dataset", help="dataset tools").add_subparsers(dest="action", required=True)
    de = d.add_parser("export", parents=[DATA_DIR],
                      help="write a built-in dataset as PNGs + NNC CSV files (x:image,y:label)")
    de.set_defaults(func=cmd_dataset_export)
    de.add_argument("dataset", help=" or ".join(built_in_names()))
    de.add_argument("dir", help="output folder")
    de.add_argument("--split", nargs="+", choices=("train", "test"), default=["train", "test"])
    de.add_argument("--limit", type=count(1, MAX_COUNT), help="the first N samples of each split only")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a usage error (exit 2), --help or --version (0)
        return e.code
    from .hints import invoked
    invoked(argv)
    _quiet_nnabla()
    args.argv = argv  # what --procs N re-launches
    if args.command == "train":
        from .train.launch import as_rank
        return as_rank(lambda: _run(args))  # one process: just _run; under mpiexec: leaving together
    return _run(args)


def _run(args):
    try:
        return args.func(args) or 0
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

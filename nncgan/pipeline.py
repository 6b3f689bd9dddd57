"""Pipeline files: several trained runs chained at inference, each stage's images feeding the next.

    nncgan: 1
    pipeline: dcgan_srcnn
    stages:
      - name: dcgan                      # stage 1: draws from latents
        graph: dcgan.yaml                # relative to this file: what trains the stage ...
        set: [params.h=14]               # ... with these overrides (nncgan train GRAPH --set ...)
        run: runs/dcgan14                # relative to the current folder; default: the graph's latest run
      - name: srcnn
        graph: srcnn.yaml
        feed: {x: dcgan}                 # dataset variable x <- stage dcgan's images

`nncgan check PIPELINE` validates the file and each stage's graph, and that every fed image has the
shape the reading executor expects; `nncgan infer PIPELINE` runs the stages in order.
"""
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .errors import GraphError, RunError
from .safeio import name_problem
from .graph.yamlio import Node, Seq, load_file

TOP_KEYS = ("nncgan", "pipeline", "description", "stages")
STAGE_KEYS = ("name", "graph", "set", "run", "executor", "feed", "description")


@dataclass
class Stage:
    name: str
    graph: str                      # absolute path of the graph file
    overrides: List[str]
    run: Optional[str]
    executor: Optional[str]
    feed: Dict[str, str]            # dataset variable -> earlier stage
    line: int


@dataclass
class Pipeline:
    path: str
    name: str
    stages: List[Stage] = field(default_factory=list)


def is_pipeline(path):
    """Whether the YAML file at `path` is a pipeline (has a top-level `pipeline:` key)."""
    try:
        raw = load_file(path)
    except GraphError:
        return False
    return "pipeline" in raw


def parse(path):
    """Read and check a pipeline file's structure; raise GraphError listing every problem."""
    path = os.fspath(path)
    raw = load_file(path)
    problems = []

    def bad(line, msg):
        problems.append(f"{path}:{line}: {msg}")

    for k in raw:
        if k not in TOP_KEYS:
            bad(raw.line_of(k), f"unknown key '{k}' in the pipeline. Known: {', '.join(TOP_KEYS)}")
    name = raw.get("pipeline")
    if not isinstance(name, str) or not name:
        bad(raw.line_of("pipeline"), "'pipeline' must be the pipeline's name (a string)")
    elif name_problem(name):  # it names infer's picture: never a path
        bad(raw.line_of("pipeline"), f"'pipeline: {name!r}' {name_problem(name)}")
    stages_node = raw.get("stages")
    if not isinstance(stages_node, Seq) or not stages_node:
        bad(raw.line_of("stages") if "stages" in raw else 1, "a pipeline needs 'stages:', a list of stages")
        stages_node = Seq()
    base = os.path.dirname(os.path.abspath(path))
    stages = []
    for i, s in enumerate(stages_node):
        line = stages_node.line_of(i)
        if not isinstance(s, Node):
            bad(line, "each stage must be a mapping with 'name' and 'graph'")
            continue
        for k in s:
            if k not in STAGE_KEYS:
                bad(s.line_of(k), f"unknown key '{k}' in a stage. Known: {', '.join(STAGE_KEYS)}")
        sname = s.get("name")
        if not isinstance(sname, str) or not sname:
            bad(line, "a stage needs a 'name' (a string)")
            continue
        if name_problem(sname):  # it names a picture beside the last stage's
            bad(s.line_of("name"), f"stage name {sname!r} {name_problem(sname)}")
            continue
        if any(st.name == sname for st in stages):
            bad(line, f"duplicate stage name '{sname}'")
        graph = s.get("graph")
        if not isinstance(graph, str) or not graph:
            bad(s.line_of("graph") if "graph" in s else line, f"stage '{sname}' needs 'graph': the graph file "
                                                               f"that trains it")
            graph = ""
        overrides = s.get("set", Seq())
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            bad(s.line_of("set"), f"stage '{sname}': 'set' must be a list of PATH=VALUE strings")
            overrides = []
        for k in ("run", "executor"):
            if k in s and not isinstance(s[k], str):
                bad(s.line_of(k), f"stage '{sname}': '{k}' must be a string")
        feed = s.get("feed", Node())
        if not isinstance(feed, Node):
            bad(s.line_of("feed"), f"stage '{sname}': 'feed' must map dataset variables to earlier stages, "
                                   f"e.g. {{x: dcgan}}")
            feed = Node()
        for var, src in feed.items():
            if src not in [st.name for st in stages]:
                bad(feed.line_of(var), f"stage '{sname}': feed '{var}' names '{src}', which is not an earlier "
                                       f"stage (earlier: {', '.join(st.name for st in stages) or 'none'})")
        stages.append(Stage(sname, os.path.normpath(os.path.join(base, graph)) if graph else "",
                            list(overrides), s.get("run") if isinstance(s.get("run"), str) else None,
                            s.get("executor") if isinstance(s.get("executor"), str) else None,
                            {str(k): str(v) for k, v in feed.items()}, line))
    if problems:
        raise GraphError(problems)
    return Pipeline(path, name, stages)


def _shown(path):
    """A path as the user would type it here: relative when under the current folder."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _stage_graph(stage):
    from .graph import overrides
    return overrides.load(stage.graph, stage.overrides)[0]


def _check_chain(p, stages_graphs):
    """Each fed variable must have the shape of the feeding stage's output; returns lines for `check`."""
    from .feeds import needed
    problems, lines, out_shapes = [], [], {}
    for st, g in zip(p.stages, stages_graphs):
        if st.executor is not None and st.executor not in g.executors:
            problems.append(f"{p.path}:{st.line}: stage '{st.name}': graph {g.path} has no executor "
                            f"'{st.executor}' (it has: {', '.join(g.executors)})")
            continue
        ex = g.executors[st.executor] if st.executor else g.executor
        needs = needed(g, ex.name)
        for var, src in st.feed.items():
            if var not in needs:
                problems.append(f"{p.path}:{st.line}: stage '{st.name}': executor '{ex.name}' reads no "
                                f"dataset variable '{var}' (it reads: {', '.join(needs) or 'none'})")
            elif src in out_shapes and tuple(out_shapes[src]) != tuple(needs[var]):
                problems.append(f"{p.path}:{st.line}: stage '{st.name}' reads '{var}' as {tuple(needs[var])}, "
                                f"but stage '{src}' draws images of shape {tuple(out_shapes[src])}")
        out_shapes[st.name] = g.networks[ex.network].layer(ex.output).shape
        fed = ", ".join(f"{v} <- {s}" for v, s in st.feed.items())
        lines.append(f"  {st.name}: {_shown(g.path)}{''.join(' --set ' + shlex.quote(o) for o in st.overrides)}"
                     f", executor {ex.name}{', ' + fed if fed else ''} -> {tuple(out_shapes[st.name])}")
    return problems, lines


def check(path):
    """`nncgan check PIPELINE`: the text it prints; GraphError when something does not fit."""
    p = parse(path)
    graphs, problems = [], []
    for st in p.stages:
        try:
            graphs.append(_stage_graph(st))
        except GraphError as e:
            problems += [f"stage '{st.name}': {m}" for m in e.problems]
    if problems:
        raise GraphError(problems)
    problems, lines = _check_chain(p, graphs)
    if problems:
        raise GraphError(problems)
    return "\n".join([f"{p.path}: pipeline '{p.name}' is valid, {len(p.stages)} stage(s) in order:"] + lines)


def _stage_run(stage, stage_runs, runs_dir="runs"):
    from . import runs
    from .graph.yamlio import load_file as load_yaml
    if stage.name in stage_runs:
        return Path(stage_runs[stage.name])
    if stage.run:
        return Path(stage.run)
    name = load_yaml(stage.graph).get("name") or Path(stage.graph).stem
    return runs.latest_run(runs_dir, str(name))


def parse_stage_runs(texts, p):
    out = {}
    names = [s.name for s in p.stages]
    for t in texts or ():
        name, sep, run = t.partition("=")
        if not sep or name not in names:
            raise RunError(f"--stage {t}: expected NAME=RUN with NAME one of the stages: {', '.join(names)}")
        out[name] = run
    return out


def run_stages(p, num, seed=0, labels=None, stage_runs=None, no_ema=False, truncation=None,
               split="test", data_dir=None, log=print):
    """Run every stage in order; returns [(stage, Loaded, images)]. Each stage reads its own run."""
    from . import feeds
    from .runs import Run
    stage_runs = stage_runs or {}
    results, images_of = [], {}
    for st in p.stages:
        try:
            run = Run(_stage_run(st, stage_runs))
            graph = run.graph()
        except RunError as e:
            sets = "".join(f" --set {shlex.quote(o)}" for o in st.overrides)
            out = f" --out {st.run}" if st.run else ""
            raise RunError(f"{p.path}:{st.line}: stage '{st.name}': {e}; train it with: nncgan train "
                           f"{_shown(st.graph)}{sets}{out}") from None
        ex = st.executor
        needs = feeds.needed(graph, ex)
        feed = {}
        for var, shape in needs.items():
            if var in st.feed:
                img = images_of[st.feed[var]]
                if tuple(img.shape[1:]) != tuple(shape):
                    raise RunError(f"{p.path}:{st.line}: stage '{st.name}' ({run}) reads '{var}' as {tuple(shape)}, "
                                   f"but stage '{st.feed[var]}' drew images of shape {tuple(img.shape[1:])}")
                feed[var] = img
        rest = [v for v in needs if v not in feed]
        if rest:
            feed.update(feeds.from_dataset(graph, rest, num, split, data_dir, seed, log))
        loaded = run.sampler(num, ex, no_ema)
        stage_labels = None
        if loaded.sampler.conditional:
            if labels is not None:
                loaded.sampler.check_label(int(labels[0]))
            stage_labels = labels if labels is not None else np.arange(num) % loaded.sampler.classes
        elif labels is not None and st is p.stages[-1] and not any(r[1].sampler.conditional for r in results):
            raise RunError(f"--label: no stage of pipeline '{p.name}' takes a label (all are unconditional)")
        # Each stage draws its latents from its own stream: (seed, stage index).
        rng = np.random.RandomState([seed, len(results)])
        images = loaded.sampler.draw(stage_labels, rng, truncation=truncation, feed=feed)
        images_of[st.name] = images
        results.append((st, loaded, images))
    return results


def infer_pipeline(path, num=100, seed=0, label=None, out=None, stage_runs=(), no_ema=False,
                   truncation=None, split="test", data_dir=None, log=print):
    """`nncgan infer PIPELINE`: the last stage's tile at `out`, each earlier stage's beside it."""
    from .images import grid, save_tile
    p = parse(path)
    runs_given = parse_stage_runs(stage_runs, p)
    labels = None if label is None else np.full(num, label)
    results = run_stages(p, num, seed, labels, runs_given, no_ema, truncation, split, data_dir, log)
    out = Path(out) if out else Path("infer") / f"{p.name}_seed{seed}.png"
    rows, cols = grid(num)
    for i, (st, loaded, images) in enumerate(results):
        last = i == len(results) - 1
        target = out if last else out.with_name(f"{out.stem}.{st.name}{out.suffix}")
        save_tile(images, target, rows, cols, info={"pipeline": p.name, "stage": st.name, "run": str(loaded.run),
                                                    "epoch": loaded.folder.name, "seed": seed, "num": num})
        log(f"nncgan: stage {st.name}: {num} images {tuple(images.shape[1:])} from {loaded.folder} -> {target}")
    return results


def infer_command(path, *, run=None, executor=None, inputs=(), context="auto", **kw):
    """`nncgan infer PIPELINE`: refuses the options that name one run, then infer_pipeline(path, **kw)."""
    from . import context as ctx
    if run or executor or inputs:
        raise RunError("--run, --executor and --input name one run; a pipeline names its stages' runs "
                       "and executors in its file (override a stage's run with --stage NAME=RUN)")
    ctx.select(context)
    return infer_pipeline(path, **kw)

"""One settings schema (nncgan.graph.schema): every setting the graph file accepts, `--set` accepts,
and a bad value gets the same message from both; render and check read the same tables."""
import copy
import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from nncgan import cli, solvers
from nncgan.errors import GraphError
from nncgan.graph import overrides, schema
from nncgan.graph.parse import parse_graph
from nncgan.graph.yamlio import Node, Seq, load_file
from nncgan.layers import get as get_layer_type

from conftest import CGAN

RAW = load_file(CGAN)
# Values of every kind a setting may be given; each is tried as the file's value and as --set's.
VALUES = [0, 1, 3, -1, 0.5, 2.5, 1e12, True, False, None, "Normal", "x", "last", [1, 2], [100], [],
          {"type": "Normal", "multiplier": 0.02}, {"every": 2}, {"type": "Step", "gamma": 0.5}, {"type": "Sgd"}]


def _layer_cases():
    """(path to a layer entry, setting) for the first layer of each type in the graph, every setting."""
    seen, out = set(), []
    for section in ("networks", "blocks"):
        for name, body in RAW[section].items():
            for i, entry in enumerate(body["layers"]):
                t = entry.get("type")
                if get_layer_type(t) is not None and t not in seen:
                    seen.add(t)
                    out += [(f"{section}.{name}.layers.{i}", k) for k in get_layer_type(t).settings]
                if isinstance(entry.get("target"), dict) and "target" not in seen:
                    seen.add("target")
                    # the keys written (a target holds a generator or a dataset, never both)
                    out += [(f"{section}.{name}.layers.{i}.target", k) for k in entry["target"]]
    return out


CASES = ([("config", k) for k in schema.CONFIG]
         + [("optimizers.Generator", k) for k in schema.OPTIMIZER if k != "network"]
         + [("optimizers.Generator.solver", k) for k in schema.solver_settings("Adam")]
         + _layer_cases())


def test_the_cases_cover_every_section_of_the_schema():
    paths = {p.split(".")[0] for p, _ in CASES}
    assert paths == {"config", "optimizers", "networks", "blocks"} and len(CASES) > 60
    assert any(p.endswith(".target") for p, _ in CASES)


def _walk(raw, path):
    node = raw
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, Seq) else node[part]
    return node


def _from_file(path, key, value):
    """The problems of the graph with `value` written at path.key in the file ([] when valid)."""
    raw = copy.deepcopy(RAW)
    node = _walk(raw, path)
    node[key] = overrides._wrap(value, node.line_of(key))  # as the YAML loader hands it over
    try:
        parse_graph(CGAN, raw=raw, text="")
    except GraphError as e:
        return e.problems
    return []


def _from_set(path, key, value):
    """The problems of `--set path.key=VALUE` on the unchanged file ([] when valid)."""
    raw = copy.deepcopy(RAW)
    try:
        overrides.apply(raw, [f"{path}.{key}={json.dumps(value)}"], str(CGAN))
        parse_graph(CGAN, raw=raw, text="")
    except GraphError as e:
        return e.problems
    return []


def _expected(problems):
    """What each problem says was expected: 'must be ... got VALUE', without where it was."""
    return {m.group(0) for p in problems for m in [re.search(r"must be .*", p)] if m}


@settings(max_examples=200)
@given(case=st.sampled_from(CASES), value=st.sampled_from(VALUES))
def test_set_accepts_what_the_file_accepts_with_the_same_message(case, value):
    path, key = case
    in_file, by_set = _from_file(path, key, value), _from_set(path, key, value)
    assert (not in_file) == (not by_set), (case, value, in_file, by_set)
    assert _expected(by_set) == _expected(in_file), (case, value, in_file, by_set)


@pytest.mark.parametrize("assignment", [
    "optimizers.Generator.update_interval=2",       # the file accepts it: so does --set
    "networks.Generator.layers.0.multiplier=0.5",   # the file holds 1.0; 0.5 is a float anyway
    "networks.Generator.layers.0.size=[100]",       # the file holds 100; a list is a shape too
    "networks.Generator.layers.4.target.multiplier=0.5",  # the file holds 1 (an int)
    "networks.Generator.layers.3.lr_mult=0.5",      # not a setting, a number: the file holds 0
    "defaults.Affine.with_bias=true",               # defaults.<Type> takes the type's settings
])
def test_set_takes_what_the_file_takes(assignment):
    graph, applied = overrides.load(CGAN, [assignment])
    assert applied and applied[0][0] == assignment.partition("=")[0]


def test_set_refuses_a_bad_value_with_the_files_message():
    with pytest.raises(GraphError) as e:
        overrides.load(CGAN, ["config.batch_size=0.5"])
    assert "--set config.batch_size=0.5: config.batch_size must be an integer 1..65,536, got 0.5" in str(e.value)
    assert _expected(e.value.problems) == _expected(_from_file("config", "batch_size", 0.5))


def test_render_and_check_read_the_schema(capsys):
    assert cli.main(["render", str(CGAN), "--set", "optimizers.Generator.solver={type: Momentum}"]) == 0
    out = capsys.readouterr().out
    data = overrides.load_value(out, "render")
    assert list(data["config"]) == list(schema.CONFIG)
    assert list(data["optimizers"]["Generator"]) == list(schema.OPTIMIZER)
    momentum = solvers.filled("Momentum", {})
    assert data["optimizers"]["Generator"]["solver"] == {"type": "Momentum", **momentum}
    assert cli.main(["check", str(CGAN), "--set", "config.ema=0.99",
                     "--set", "optimizers.Generator.solver={type: Momentum}"]) == 0
    out = capsys.readouterr().out
    assert "config ema 0.99" in out and "Momentum(lr 0.001, momentum 0.9)" in out


def test_every_layer_types_settings_are_settable_where_a_layer_of_it_is():
    from nncgan.layers import known_types
    for t in known_types():
        found = schema.settings_at(Node({"type": t}), ["networks", "N", "layers", "0"])
        assert set(found) == set(get_layer_type(t).settings)
        assert all(f.label == f"{t} setting '{k}'" and f.null_is_default for k, f in found.items())

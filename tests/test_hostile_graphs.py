"""Hostile and broken graph files: `nncgan check` either accepts one or reports problems (exit 2),
never a traceback, a hang or a file written. Property-based: mutations of the real CGAN graph, and
random YAML text."""
import contextlib
import copy
import io
import math
import os
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from nncgan import cli
from nncgan.graph import yamlio

from conftest import CGAN

BASE = yaml.safe_load(CGAN.read_text())


def check(text):
    """`nncgan check` on `text` in an empty folder: (exit status, output). Asserts nothing is written."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "g.yaml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(d)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli.main(["check", path])
        finally:
            os.chdir(cwd)
        assert os.listdir(d) == ["g.yaml"], os.listdir(d)
    output = out.getvalue() + err.getvalue()
    assert rc in (0, 2), output
    assert "Traceback" not in output
    if rc == 2:
        assert "problem(s) in the graph" in output and "g.yaml" in output, output
    return rc, output


def paths(node, prefix=()):
    """Every (path) to a value in the nested data, the root included."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def get(node, path):
    for p in path:
        node = node[p]
    return node


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 1000),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["Affine", "ReLU", "Sigmoid", "Input", "BinaryCrossEntropy", "Adam", "mnist", "x", "y",
                     "Z", "GY", "generator", "discriminator", "Generator", "Constant", "Uniform", "same",
                     "../../etc/passwd", "~", "", "0", "-1", "1e999"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.one_of(st.text(max_size=8), scalars),
                                                                       inner, max_size=4)),
                      max_leaves=12)
KEYS = ["name", "type", "input", "inputs", "use", "layers", "out_shape", "kernel_shape", "lr_mult", "scope",
        "settings", "target", "network", "solver", "size", "dataset", "generator", "multiplier", "prefix",
        "scope_prefix", "outputs", "pad", "stride", "axes", "batch_stat", "weight", "shape", "update_interval"]


@st.composite
def mutated_graph(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        all_paths = list(paths(data))
        path = draw(st.sampled_from(all_paths))
        op = draw(st.sampled_from(["delete", "replace", "swap", "rename", "nest", "add"]))
        if not path:
            if op == "replace":
                data = draw(values)
            continue
        parent, key = get(data, path[:-1]), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(values)
        elif op == "swap":
            other = draw(st.sampled_from(all_paths))
            if other and other[:len(path)] != path and path[:len(other)] != other:
                a, b = get(data, path), get(data, other)
                parent[key], get(data, other[:-1])[other[-1]] = copy.deepcopy(b), copy.deepcopy(a)
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)))] = parent.pop(key)
        elif op == "nest":
            parent[key] = draw(st.sampled_from([[parent[key]], {"x": parent[key]}, [[[[parent[key]]]]]]))
        elif op == "add" and isinstance(parent, (dict, list)):
            target = parent[key]
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS))] = draw(values)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(values))
    return data


def dump(data):
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10_000)


def fast(n):
    # The suite's profile (conftest): the same derandomized cases locally and in CI. How long each
    # check takes is measured in bench/hostile_check_times.py, not asserted here.
    return settings(max_examples=n, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fast(300)
@given(mutated_graph())
def test_mutated_cgan_graphs_are_accepted_or_reported(data):
    check(dump(data))


TOKENS = ["&a ", "*a", "&b ", "*b", "[", "]", "{", "}", ": ", "- ", "\n", "  ", "\t", "? ", ", ", "<<: *a",
          "networks", "layers", "type", "Affine", "name", "optimizers", "!!python/object/apply:os.system ",
          "!!binary ", "!!set ", "!!omap ", "!!timestamp ", "!!float ", "!!str ", "'", '"', "#", "1e999", ".nan",
          "~", "%YAML 1.1\n", "---\n", "...\n", "|\n", ">-\n", "\\x00", "\ufeff", "2001-12-14", "0x1F", "0o17"]
yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=60).map("".join),
    # the real graph with a slice of it cut out or repeated
    st.tuples(st.integers(0, len(CGAN.read_text())), st.integers(0, 400), st.booleans()).map(
        lambda t: (lambda s, i, n, rep: s[:i] + (s[i:i + n] * 2 if rep else "") + s[i + n:])(
            CGAN.read_text(), *t)),
)


@fast(200)
@given(yaml_text)
def test_random_yaml_text_is_accepted_or_reported(text):
    check(text)


def test_the_real_graph_passes_the_check_used_above():
    rc, out = check(CGAN.read_text())
    assert rc == 0 and "Generator" in out


LOL = "\n".join([f"l0: &l0 [{', '.join(['lol'] * 9)}]"]
                + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)])


@pytest.mark.parametrize("text, message", [
    (LOL, f"more than {yamlio.MAX_NODES} values (counting each alias as what it stands for)"),
    ("a: " + "[" * 5000 + "]" * 5000, f"nested more than {yamlio.MAX_DEPTH} levels deep"),
    ("a: &a [*a]\n", "an alias refers to a value that contains it"),
    ("a: &a {b: *a}\n", "an alias refers to a value that contains it"),
    ("a: !!python/object/apply:os.system [touch pwned]\n", "tags such as 'tag:yaml.org,2002:python/object"),
    ("a: !!float '1e'\n", "tags such as 'tag:yaml.org,2002:float' are not allowed"),
    ("networks: " + "x" * (yamlio.MAX_GRAPH_BYTES + 1), "larger than"),
])
def test_hostile_yaml_is_refused_quickly_with_one_clear_problem(text, message):
    rc, out = check(text)
    assert rc == 2 and message in out, out


def test_a_graph_just_within_the_expansion_limit_still_parses():
    n = int(math.sqrt(yamlio.MAX_NODES)) // 2   # n aliases of an n-long list: about n*n values
    text = f"base: &a [{', '.join(['1'] * n)}]\nmany: [{', '.join(['*a'] * n)}]\n"
    data = yamlio.load_text(text, "g.yaml")
    assert len(data["many"]) == n and data["many"][0] is data["base"]


@pytest.mark.parametrize("edit", [
    lambda g: g["blocks"].__setitem__(1, g["blocks"].pop("generator")),          # a block named by a number
    lambda g: g["networks"].__setitem__(2, g["networks"].pop("Generator")),      # a network named by a number
    lambda g: g["blocks"]["generator"].__setitem__("inputs", [3, "GY"]),         # a block input named by a number
])
def test_names_that_are_not_strings_are_reported_not_crashed_on(edit):
    # found by the fuzzer: the "Known: ..." part of a message joined the names as strings
    data = copy.deepcopy(BASE)
    edit(data)
    rc, out = check(dump(data))
    assert rc == 2 and "Traceback" not in out, out

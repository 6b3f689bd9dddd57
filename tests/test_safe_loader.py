"""Issue 16 item 7: `--set` values go through the graph files' own safe, bounded loader (alias bombs,
tags, deep nesting refused with a message), list indexes are ASCII digits, and graph files with
dates, 4,400-digit integers or lone surrogates get one clear message, never a traceback."""
import copy

import pytest
from hypothesis import given, settings, strategies as st

from nncgan import cli
from nncgan.errors import GraphError
from nncgan.graph import overrides, yamlio
from nncgan.graph.parse import parse_graph

from conftest import CGAN
from hang_guard import no_hang

TEXT = CGAN.read_text()


def run_cli(args, capsys):
    with no_hang(what=" ".join(a[:40] for a in args)):
        rc = cli.main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out + out.err


def laughs(levels, width=10):
    """A billion-laughs value in flow style: `width`^`levels` items from a few hundred bytes."""
    parts = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize("value, message", [
    (laughs(6), "more than 100000 values (counting each alias as what it stands for)"),
    ("!!float abc", "tags such as 'tag:yaml.org,2002:float' are not allowed"),
    ("!!timestamp 2024-13-45", "tags such as 'tag:yaml.org,2002:timestamp' are not allowed"),
    ("!!python/object/apply:os.system [echo]", "are not allowed"),
    ("[" * 5000 + "]" * 5000, "nested more than 64 levels deep"),
    ("9" * 4400, "an integer of 4,400 digits; a graph's integers have at most 30"),
    ('"\\ud800"', "lone surrogate (U+D800)"),
    ("1e999", "beyond the range of a float"),
])
def test_set_values_are_read_by_the_bounded_loader(value, message, capsys):
    rc, out = run_cli(["check", str(CGAN), "--set", f"description={value}"], capsys)
    assert rc == 2 and message in out, out
    assert "--set description=" in out


def test_list_indexes_are_decimal_digits(capsys):
    for index in ("²", "0" * 5000 + "1", "-1", "1e0", "٣٣"):
        rc, out = run_cli(["check", str(CGAN), "--set", f"networks.Generator.layers.{index}.size=3"], capsys)
        assert rc == 2 and "networks.Generator.layers is a list of 5 item(s); give an index 0..4" in out, out
    for index in ("0", "٠", "０"):   # ASCII, Arabic-Indic and full-width zero: the same item
        graph, applied = overrides.load(CGAN, [f"networks.Generator.layers.{index}.multiplier=2"])
        assert applied[0][0] == f"networks.Generator.layers.{index}.multiplier"
        assert graph.networks["Generator"].layer("Z").settings["multiplier"] == 2.0


def test_set_reads_numbers_dates_and_text_as_graph_files_do():
    assert overrides.parse_assignment("a.b=1e-4") == (["a", "b"], 1e-4)
    assert overrides.parse_assignment("a=.5e-3")[1] == 0.0005
    assert overrides.parse_assignment("a=1E5")[1] == 100000.0
    assert overrides.parse_assignment("a=2024-01-01")[1] == "2024-01-01"   # text, not a datetime
    assert overrides.parse_assignment("a=inf")[1] == "inf"
    assert overrides.parse_assignment("a=")[1] is None


@pytest.mark.parametrize("line, expect", [
    ("description: 2024-01-01", None),                  # a date is text
    ("description: 2024-13-45 10:00:00", None),         # even one no calendar has
    ("description: " + "9" * 4400, "an integer of 4,400 digits"),
    ('description: "a\\udc80b"', "lone surrogate (U+DC80)"),
    ("description: 1e400", "beyond the range of a float"),
])
def test_graph_files_with_dates_huge_integers_and_surrogates(line, expect, tmp_path, capsys):
    path = tmp_path / "g.yaml"
    old = next(l for l in TEXT.splitlines() if l.startswith("description:"))
    path.write_text(TEXT.replace(old, line, 1))
    rc, out = run_cli(["check", str(path)], capsys)
    if expect is None:
        assert rc == 0, out
        assert parse_graph(path).name == "cgan_mnist"
    else:
        line_no = TEXT.splitlines().index(old) + 1
        assert rc == 2 and f"{path}:{line_no}: not valid YAML: " in out and expect in out, out


def test_loaded_scalars_are_plain_values():
    data = yamlio.load_text("a: 2024-01-01\nb: 1e-4\nc: .inf\nd: -.INF\ne: .nan\nf: 12:30\ng: 1_000\n", "g.yaml")
    assert data["a"] == "2024-01-01" and data["b"] == 1e-4 and data["c"] == float("inf")
    assert data["d"] == float("-inf") and data["e"] != data["e"] and data["g"] == 1000
    assert data["f"] == 750   # YAML 1.1 sexagesimal, as PyYAML reads it


# ---- properties: any text is a value or nncgan's own error, never another exception or a hang

TOKENS = ["&a ", "*a", "&b ", "*b", "!!str ", "!!float ", "!x ", "[", "]", "{", "}", ", ", ": ", "- ", "\n",
          "  ", "? ", "<<: ", "1e-4", "1E5", ".5e-3", "1e999", "2024-01-01", "12:30:00", "0x1F", "0o7",
          "9" * 40, "9" * 4400, "2024-13-45", '"\\ud800"', '"\\U0001F600"', "'", '"', "#", "|", ">", "%YAML 1.1\n", "---", "...",
          "~", "null", "yes", ".inf", ".nan", "٣", "\t", "\x00", "\ud800", "a"]
yamlish = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
any_text = st.one_of(yamlish, st.text(max_size=80))
graph_text = st.one_of(any_text, yamlish.map(lambda t: "a: " + t), yamlish.map(lambda t: "a:\n  b: " + t))


def plain_values(data):
    """Every scalar in loaded data: the kinds a graph holds (no datetime, no bytes, no objects)."""
    if isinstance(data, dict):
        return [v for k, x in data.items() for v in plain_values(k) + plain_values(x)]
    if isinstance(data, list):
        return [v for x in data for v in plain_values(x)]
    return [data]


@settings(derandomize=True, max_examples=400, deadline=None)
@given(any_text)
def test_any_set_value_is_a_value_or_a_graph_error(value):
    with no_hang(what=f"--set description={value!r}"):
        try:
            path, parsed = overrides.parse_assignment(f"description={value}")
        except GraphError as e:
            assert e.problems and all(p.startswith("--set description=") for p in e.problems)
            return
    assert path == ["description"]
    assert parsed is None or isinstance(parsed, (str, int, float, bool, list, dict))


@settings(derandomize=True, max_examples=400, deadline=None)
@given(graph_text)
def test_any_graph_text_is_a_mapping_or_a_graph_error(text):
    with no_hang(what=f"a graph file of {text!r}"):
        try:
            data = yamlio.load_text(text, "g.yaml")
        except GraphError as e:
            assert all(p.startswith("g.yaml") for p in e.problems)
            return
    assert isinstance(data, yamlio.Node)
    assert all(v is None or type(v) in (str, int, float, bool) for v in plain_values(data))
    yamlio.dump(data).encode("utf-8")   # what loads can be written back (the run's graph.yaml)


RAW = yamlio.load_file(CGAN)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.tuples(st.sampled_from(["", "networks.Generator.layers.", "blocks.generator.layers.", "config.",
                                   "optimizers.Generator.solver.", "networks."]),
                 st.lists(st.one_of(st.sampled_from(["0", "4", "²", "٣", "０", "size", "seed", "type", "",
                                                     "9" * 5000, "99999999999"]), st.text(max_size=8)),
                          min_size=1, max_size=3).map(".".join)).map("".join),
       st.sampled_from(["3", "1e-4", "[1, 2]", "{a: 1}", "x", ""]))
def test_any_set_path_is_applied_or_a_graph_error(path, value):
    raw = copy.deepcopy(RAW)
    assert raw.line_of("config") == RAW.line_of("config")
    with no_hang(what=f"--set {path}={value}"):
        try:
            applied = overrides.apply(raw, [f"{path}={value}"], str(CGAN))
        except GraphError as e:
            assert e.problems
            return
    assert applied and applied[0][0] == path.strip()

"""Commands printed as hints, written the way this nncgan was invoked, so they work as printed.

`bin/nncgan` exports NNCGAN_PROG (how it was typed); an `nncgan` found on PATH prints as `nncgan`;
`python -m nncgan.cli` prints as that. `invoked()` keeps the command line of this process, so that a
"start again" hint repeats it whole (--data-dir, --log-file, --out and all).
"""
import difflib
import os
import shlex
import shutil
import sys

_ARGV = []


def invoked(argv):
    """Remember the arguments this process was started with (called by cli.main)."""
    _ARGV[:] = [str(a) for a in argv]


def argv():
    return list(_ARGV)


def prog():
    env = os.environ.get("NNCGAN_PROG")
    if env:
        return shlex.quote(env)
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "nncgan":
        found = shutil.which("nncgan")
        if found and os.path.realpath(found) == os.path.realpath(argv0):
            return "nncgan"
        rel = os.path.relpath(argv0)
        return shlex.quote(argv0 if rel.startswith("..") else rel)
    if argv0.endswith(os.path.join("nncgan", "cli.py")):  # python -m nncgan.cli
        return f"{shlex.quote(sys.executable)} -m nncgan.cli"
    return "nncgan"


def command(*args):
    """`nncgan ARGS...` as the user would type it here (each argument shell-quoted)."""
    return " ".join([prog()] + [shlex.quote(str(a)) for a in args])


def again(fallback):
    """The command line of this process, to run it again, when it is the command `fallback` names
    (["train", GRAPH]); else `fallback` itself (a library caller, or another command)."""
    from .bundled import resolve
    same = len(_ARGV) > 1 and _ARGV[0] == fallback[0] and \
        os.path.abspath(resolve(_ARGV[1])) == os.path.abspath(str(fallback[1]))
    return command(*(_ARGV if same else fallback))


# ---- "did you mean": the closest names to a misspelt one

def did_you_mean(word, options):
    """"; did you mean 'X'?" for the options closest to a misspelt `word`, or ""."""
    options = [str(o) for o in options]
    lower = {o.lower(): o for o in options}  # case slips (Relu for ReLU) are the commonest
    near = difflib.get_close_matches(str(word).lower(), list(lower), n=3, cutoff=0.6)
    # Only the matches about as close as the best one: 'Afine' is Affine, not also ASin.
    best = max((difflib.SequenceMatcher(None, str(word).lower(), n).ratio() for n in near), default=0)
    near = [n for n in near if difflib.SequenceMatcher(None, str(word).lower(), n).ratio() >= best - 0.1]
    return f"; did you mean {' or '.join(repr(lower[n]) for n in near)}?" if near else ""


def close(word, options):
    """The options closest to `word` (at most three)."""
    lower = {str(o).lower(): o for o in options}
    return [lower[n] for n in difflib.get_close_matches(str(word).lower(), list(lower), n=3, cutoff=0.6)]

"""Commands printed as hints, written the way this nncgan was invoked, so they work as printed.

`bin/nncgan` exports NNCGAN_PROG (how it was typed); an `nncgan` found on PATH prints as `nncgan`;
`python -m nncgan.cli` prints as that. `invoked()` keeps the command line of this process, so that a
"start again" hint repeats it whole (--data-dir, --log-file, --out and all).
"""
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

"""What produced a run, recorded in run.json: nncgan's version and commit, Python, NNabla, the
command line and the context, so that a run can be told apart and repeated."""
import os
import platform
import subprocess
import sys
from pathlib import Path


def version():
    """The installed distribution's version, else the package's own."""
    try:
        from importlib.metadata import version as dist_version
        return dist_version("nncgan")
    except Exception:  # not installed (run from a checkout with PYTHONPATH)
        from . import __version__
        return __version__


def commit():
    """The git commit of the checkout nncgan runs from (with "-dirty" when it has changes), or None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def version_line():
    c = commit()
    return f"nncgan {version()}" + (f" (commit {c[:12]}{'-dirty' if c.endswith('-dirty') else ''})" if c else "")


def record(argv, context):
    import nnabla
    return {"nncgan_version": version(), "commit": commit(), "python": platform.python_version(),
            "nnabla": nnabla.__version__, "context": str(context), "command": list(argv),
            "cwd": os.getcwd(), "platform": f"{sys.platform} {platform.machine()}"}

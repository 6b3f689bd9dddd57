"""A run's own settings, kept in run.json: what `--resume` trains with unless told otherwise.

Also the quick-run limits: `--limit-samples N` (the first N training samples) and
`--limit-iterations N` (at most N iterations per epoch), announced and recorded.
"""
import os

from ..data.samples import head  # noqa: F401  (the limit is applied by DatasetSpec.load)

ENV_LIMIT = "NNCGAN_LIMIT_SAMPLES"  # the old, undocumented way; an alias of --limit-samples now
# (option, run.json key): kept by a resumed run unless the option is given again
KEPT = (("epochs", "max_epoch"), ("data_dir", "data_dir"), ("log_file", "log_file"),
        ("limit_samples", "limit_samples"), ("limit_iterations", "limit_iterations"), ("save_every", "save_every"))


def env_alias(args, say=print):
    """NNCGAN_LIMIT_SAMPLES=N read as --limit-samples N, saying so."""
    value = os.environ.get(ENV_LIMIT)
    if not value or getattr(args, "limit_samples", None) is not None:
        return
    try:
        n = int(value)
    except ValueError:
        from ..errors import RunError
        raise RunError(f"{ENV_LIMIT} must be a whole number of samples, got {value!r}") from None
    if n > 0:
        args.limit_samples = n
        say(f"nncgan: {ENV_LIMIT}={n} is read as --limit-samples {n} (use the option instead)")


def recorded(args):
    """The settings a new run writes into run.json."""
    return {"data_dir": os.path.abspath(args.data_dir) if args.data_dir else None,
            "log_file": os.path.abspath(args.log_file) if args.log_file else None,
            "limit_samples": args.limit_samples, "limit_iterations": args.limit_iterations,
            "save_every": getattr(args, "save_every", None)}


def resumed(args, info, say=print):
    """Fill the options not given from the run's run.json; say which were taken from it."""
    taken = []
    for option, key in KEPT:
        if getattr(args, option) is None and info.get(key) is not None:
            setattr(args, option, info[key])
            taken.append(f"--{option.replace('_', '-')} {info[key]}")
    if taken:
        say(f"nncgan: resuming with the run's own settings: {', '.join(taken)}")
    return taken

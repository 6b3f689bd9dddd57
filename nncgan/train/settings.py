"""A run's own settings, kept in run.json: what `--resume` trains with unless told otherwise.

Also the quick-run limits: `--limit-samples N` (the first N training samples) and
`--limit-iterations N` (at most N iterations per epoch), announced and recorded.
"""
import os

from ..data.samples import Arrays, Samples, length_of

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


class _Head(Samples):
    """The first n samples of a streamed dataset."""

    def __init__(self, data, n):
        self._data, self._n = data, min(n, len(data))
        self.variables = data.variables
        self.independent = getattr(data, "independent", ())

    def __len__(self):
        return self._n

    def sample(self, i):
        return self._data.sample(i)

    def column(self, var):
        return self._data.column(var)[:self._n]

    def where(self, i):
        return self._data.where(i)


def head(data, n, log=print):
    """The first `n` samples of a dataset (a dict of arrays, Arrays or Samples), announced."""
    total = length_of(data)
    if n >= total:
        log(f"nncgan: --limit-samples {n}: the dataset has {total} samples, all are used")
        return data
    log(f"nncgan: --limit-samples {n}: training on the first {n} of {total} samples")
    if isinstance(data, Samples):
        return _Head(data, n)
    return Arrays({k: v[:n] for k, v in data.items()}, getattr(data, "_where", None),
                  getattr(data, "independent", ()))

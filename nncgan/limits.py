"""The ranges of the numbers a user gives (command line and graph file), checked where they are read.

Each limit is what the code behind it can take, not a matter of taste: a seed is what NumPy's
RandomState accepts; a count of images or a batch is bounded by the memory the networks would
allocate for it, refused before NNabla tries (which fails with an allocation traceback, or a
segmentation fault past 2^31 elements).
"""
import argparse
import math

SEED_MAX = 2 ** 32 - 1         # np.random.RandomState takes seeds 0..2^32-1
MAX_BATCH = 1 << 16            # samples in one batch (config.batch_size, --batch-size)
MAX_IMAGES = 10_000            # images drawn at once (infer --num, eval --num per label, --steps)
MAX_EPOCHS = 10 ** 6
MAX_COUNT = 10 ** 9            # any other count (dataset export --limit)
MAX_BATCH_ELEMENTS = 1 << 30   # values of all a network's layers for one batch: 4 GiB of float32


def seed_error(v, what="seed"):
    """None when `v` is a usable seed, else the message."""
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= SEED_MAX:
        return f"{what} must be an integer 0..{SEED_MAX} (2^32 - 1), got {v!r}"
    return None


def derived_seed(seed, offset):
    """A second stream's seed from `seed` (the epoch tiles', the eval hook's): seed + offset, kept
    within RandomState's range, so every seed the graph accepts also works here."""
    return (seed + offset) % (SEED_MAX + 1)


# ---- argparse types: a bad number is a usage error naming the option, before anything runs


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def seed(text):
    v = _int(text)
    if not 0 <= v <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer 0..{SEED_MAX} (2^32 - 1), got {text}")
    return v


def count(least, most, unit=""):
    """An integer least..most; the message names the bound and why it exists."""
    def parse(text):
        v = _int(text)
        if v < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {text}")
        if v > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:,}{unit}, got {text}")
        return v
    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def procs(text):
    """--procs N|auto: a number of processes, or auto."""
    if text.strip() == "auto":
        return "auto"
    try:
        return count(1, MAX_COUNT)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a number of processes (at least 1) or auto, got {text!r}") from None


def truncation(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


# ---- memory


def batch_elements(network, n):
    """Values a forward pass of `network` holds for `n` samples (every layer's output)."""
    per_sample = 0
    for layer in network.layers:
        if layer.shape is not None:
            per_sample += math.prod(int(d) for d in layer.shape)
    return per_sample * n


def memory_error(network, n, what):
    """None when `n` samples of `network` fit MAX_BATCH_ELEMENTS, else the message (before allocating)."""
    total = batch_elements(network, n)
    if total > MAX_BATCH_ELEMENTS:
        return (f"{what} {n:,} would need {total:,} values for network '{network.name}' "
                f"({total * 4 / 2 ** 30:.1f} GiB of float32); nncgan allocates at most "
                f"{MAX_BATCH_ELEMENTS:,} per batch: give a smaller {what}")
    return None

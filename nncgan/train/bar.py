"""The progress line: fits the terminal (80 columns and up), shows each loss's running mean over
the epoch so far (as Keras does) under a short name, and the images per second."""
import re
import shutil

from tqdm import tqdm

FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
MIN_BAR = 6


def short_names(names):
    """Generator -> G, DiscriminatorFake -> DF: a name's capitals (and digits); the name itself when
    two would read the same or it has no capitals."""
    short = {n: "".join(re.findall(r"[A-Z0-9]", n)) or n for n in names}
    if len(set(short.values())) < len(short):
        return {n: n for n in names}
    return short


def width():
    return max(80, min(shutil.get_terminal_size((80, 24)).columns, 160))


def make(iters, desc, quiet, start=0):
    """The epoch's iterations from `start` (a resumed partial epoch), shown out of `iters`."""
    return tqdm(range(start, iters), desc=desc, disable=quiet, bar_format=FORMAT, ncols=width(), leave=True,
                total=iters, initial=start)


def postfix(means, rate, short, room):
    """'G 0.922 DF 0.588 DR 0.842 1234 img/s', shortened to fit `room` characters."""
    for digits, with_rate in ((3, True), (2, True), (2, False), (1, False)):
        text = " ".join(f"{short[k]} {v:.{digits}f}" for k, v in means.items())
        if with_rate:
            text += f" {rate:.0f} img/s"
        if len(text) <= room:
            return text
    return text[:max(room, 0)]


def room(desc, iters):
    """What the postfix may take on one line beside the description, counts, times and a short bar."""
    fixed = len(desc) + len(" 100%||") + 2 * len(str(iters)) + len(" / [00:00<00:00, ]") + MIN_BAR
    return width() - fixed - 1

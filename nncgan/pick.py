"""Which run a command uses when none is named: the latest one that can do the job, said out loud."""
from pathlib import Path


def gan_run(run, runs_dir, job, how="--run DIR"):
    """`run` if given; else the latest run with a saved epoch that is not a classifier's, announced.

    infer, report, export and eval draw or show generated images: a classifier trained after the
    GAN (as the README asks) must not be picked by them."""
    if run:
        return Path(run)
    from .eval.report import latest_gan_run
    found = latest_gan_run(runs_dir)
    print(f"nncgan: {job} {found}, the latest GAN run (name another with {how})")
    return found

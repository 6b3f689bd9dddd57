"""A hang guard for tests of inputs that once never finished: a generous bound, not a speed test."""
import contextlib
import signal

GENEROUS_S = 60  # the cases take well under a second; a loaded CI machine is allowed many times that


class Hang(AssertionError):
    pass


@contextlib.contextmanager
def no_hang(seconds=GENEROUS_S, what="the call"):
    """Fail (instead of waiting forever) when the block runs longer than `seconds` (main thread, POSIX)."""
    def fire(signum, frame):
        raise Hang(f"{what} did not finish within {seconds} s: a hang")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

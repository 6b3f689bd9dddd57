"""Errors a user can act on: each carries where it happened and what was expected.

The CLI prints these without a traceback and exits with status 2.
"""


class NncganError(Exception):
    """Base class for every error meant for the user, not the developer."""

    exit_code = 2


class DataError(NncganError):
    """A dataset could not be found, verified or read."""


class GraphError(NncganError):
    """One or more problems in a graph file; `problems` holds each message."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class RunError(NncganError):
    """A run folder is missing, incomplete or does not fit the graph."""

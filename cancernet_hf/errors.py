"""A few exception classes; each also inherits a built-in so callers can catch ValueError/KeyError.

Messages say, in this order: what failed, the offending value, the likely cause, the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CancerNetError(Exception):
    """Base of every error the library raises on purpose; the CLI prints it as one line."""


class DatasetLayoutError(CancerNetError, ValueError):
    """A dataset folder does not have the expected <Main>/<sub>/*.jpg layout."""


class BadImageError(CancerNetError, ValueError):
    """One image file cannot be used (corrupt, bomb, wrong mode...)."""


class TaxonomyError(CancerNetError, ValueError):
    """A taxonomy (built in or from JSON) is inconsistent, or a label is unknown."""


class SplitError(CancerNetError, ValueError):
    """A split manifest is missing, inconsistent or leaks groups across splits."""


class UnknownModelError(CancerNetError, KeyError):
    """A member name is neither a preset, a local folder nor a reachable Hub id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class HubUnreachableError(CancerNetError, RuntimeError):
    """The Hugging Face Hub cannot be reached and nothing is cached."""


class TrainingSetupError(CancerNetError, RuntimeError):
    """The training run is misconfigured (e.g. processes seen differ from WORLD_SIZE)."""


class PublishError(CancerNetError, RuntimeError):
    """A repo cannot be staged or uploaded (no token, bad repo id, missing files)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' when a close match exists, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""

"""User-facing errors. Each names the problem and the fix; the CLI prints them without a traceback."""


class EmbedRobustError(Exception):
    """Base class of every error a user can cause (bad params, missing data, unknown names)."""


class ConfigError(EmbedRobustError):
    """params.yaml is malformed or inconsistent."""


class UnknownNameError(EmbedRobustError, KeyError):
    """A registry lookup (model, perturbation, dataset source) failed."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataError(EmbedRobustError):
    """A dataset or image cannot be read."""


class OfflineError(EmbedRobustError):
    """Something must be downloaded but the network or the hub is unavailable."""


class AttackError(EmbedRobustError, ValueError):
    """An attack was called with an invalid budget, option or input."""


def unknown_name(kind: str, name: str, known: list[str]) -> UnknownNameError:
    """Build an error for an unknown registry name, suggesting the closest known ones."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(known))}."
    )

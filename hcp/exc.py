"""Errors shared by every hcp package.

Each error names what was wrong so that a technician can act on one line.
Subpackages derive their own errors from :class:`HcpError`; where an error
matches a builtin it inherits that too, so callers may catch either.
"""


class HcpError(Exception):
    """Root of every error hcp raises on purpose."""


class ProtocolError(HcpError, ValueError):
    """A wire message that does not follow protocol v1; ``field`` names where."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class ConfigError(HcpError, ValueError):
    """A configuration file or flag that is missing, malformed or out of range."""


class PolicyError(ConfigError):
    """A policy profile that cannot be loaded or does not make sense."""


class InstanceRunning(HcpError, RuntimeError):
    """Another process already runs as this terminal or collector (its lock file names it)."""

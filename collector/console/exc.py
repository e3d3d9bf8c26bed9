"""Errors the console raises on purpose; each says in one line what was wrong."""

from hcp.collector.exc import CollectorError


class ConsoleError(CollectorError):
    """Root of the console's own errors."""


class AccountError(ConsoleError, ValueError):
    """An account name, role, hall or password that cannot be used; names which and why."""


class LoginRefused(ConsoleError, PermissionError):
    """A login that failed: wrong name or password, a disabled account, or one locked for a while."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

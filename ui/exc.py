"""Errors of the touchscreen front end, its fonts, receipts and voice."""

from __future__ import annotations

import enum

from hcp.exc import HcpError


class UiError(HcpError):
    """Root of the errors the touchscreen front end raises."""


class FontNotFoundError(UiError, FileNotFoundError):
    """No installed font can draw Chinese text (install fonts-noto-cjk)."""


class DisplayError(UiError, RuntimeError):
    """The display could not be opened or the UI thread did not come up."""


class TokenProblem(enum.StrEnum):
    """Why a receipt token was refused; the rating page shows a message per problem."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"


class TokenError(UiError, ValueError):
    """A receipt token that is malformed, forged (or for another case) or expired; ``problem`` says which."""

    def __init__(self, problem: TokenProblem, detail: str) -> None:
        self.problem = problem
        super().__init__(f"receipt token {problem.value}: {detail}")

"""Who is calling: Puter's token check, with its three distinct refusals."""

from __future__ import annotations

from starlette.responses import Response

from .responses import v2_error
from .state import Account, EmulatorState
from .tokens import is_current_format

__all__ = ["EMAIL_UNCONFIRMED_MESSAGE", "authenticate"]

EMAIL_UNCONFIRMED_MESSAGE = "You must confirm your email address to use this."


def authenticate(state: EmulatorState, token: str | None) -> Account | Response:
    """The account `token` belongs to, or the 401 Puter would answer.

    No token: `token_missing`; not a current-format token: `reauth_required` (with a
    `reason`), also for a session signed out elsewhere (`session_revoked`); a well-formed token
    nobody owns: `token_auth_failed`.
    """
    if token is None:
        return v2_error(401, "token_missing", "Missing authentication token.")
    if not is_current_format(token):
        return v2_error(
            401,
            "reauth_required",
            "This session is no longer valid. Please sign in again.",
            reason="token_format",
        )
    if token in state.revoked_tokens:
        return v2_error(
            401,
            "reauth_required",
            "This session is no longer valid. Please sign in again.",
            reason="session_revoked",
        )
    account = state.account_by_token(token)
    if account is None:
        return v2_error(401, "token_auth_failed", "Authentication failed.")
    return account

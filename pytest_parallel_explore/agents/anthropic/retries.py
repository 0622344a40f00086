"""Which Messages API errors the built-in agent retries, how long it waits, and how it words the others.

The SDK's own retries are off (``max_retries=0``): the agent retries while
the trial has time, so every retry shows in the transcript.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anthropic

_BACKOFF_MAX_SECONDS = 60.0


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt + 1`` when the API named no delay: exponential, with jitter."""
    return min(_BACKOFF_MAX_SECONDS, 2.0**attempt) * random.uniform(0.5, 1.0)


def retryable(status: int) -> bool:
    """Timeouts, conflicts, rate limits and server errors (overload included) pass; the rest will not."""
    return status in (408, 409, 429) or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the API asked us to wait (``retry-after-ms`` or ``retry-after``), if it said."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(float(headers[name]) * scale, 0.0)
        except (KeyError, ValueError):
            continue
    return None


def api_failure(exc: anthropic.APIStatusError) -> str:
    """The trial's failure for an error not retried, with what to check when it is the credentials."""
    detail = f"{exc.status_code} {exc.type or 'error'}: {exc.api_message or exc.message}"
    if exc.status_code in (401, 403):
        return (
            f"the Anthropic API refused the credentials ({detail}); check ANTHROPIC_API_KEY "
            "and the account's access to the model"
        )
    return f"the Anthropic API rejected the request ({detail})"

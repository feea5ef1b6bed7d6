"""When and how long to wait before repeating a registry request that failed transiently.

Registries fail all the time in small ways: a 503 from a load balancer, a 429 rate limit on
manifest PUTs, a connection reset. Every trusted client repeats such requests; this is the policy
this project's one registry client follows. The anchors the defaults were chosen from:

* oras-go retries 408/429/5xx up to 5 times, 250 ms doubling, capped, honouring Retry-After;
* go-containerregistry makes 3 tries with 1 s x 3 backoff.

Defaults: 6 attempts (5 retries, as oras-go), waits of 0.25 s doubling to at most 8 s with
jitter (half of each wait random, so that parallel workers do not retry in step), a
``Retry-After`` obeyed up to 60 s, and at most 120 s spent on one operation. At a 15 % fault
rate one request fails all 6 attempts with probability 0.15^6, about 1 in 88,000.

The policy is a value; sleeping and the clock are the client's, so tests run it without waiting.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from monogres_oci.errors import UsageError

# 408 Request Timeout, 429 Too Many Requests, and the server-side errors a proxy or an overloaded
# registry answers with. 501 (not implemented) and 505 are not transient.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
ENV_RETRIES = "MONOGRES_RETRIES"
DEFAULT_RETRIES = 5
_RANDOM = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded, jittered exponential backoff for one registry operation."""

    retries: int = DEFAULT_RETRIES  # repetitions after the first attempt
    first_wait: float = 0.25
    max_wait: float = 8.0
    max_retry_after: float = 60.0  # a longer Retry-After is not waited for
    budget: float = 120.0  # seconds one operation may take, waits included

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def wait(self, attempt: int, retry_after: float | None = None,
             rand: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        full = min(self.first_wait * 2.0 ** (attempt - 1), self.max_wait)
        return full / 2 + (rand or _RANDOM).uniform(0, full / 2)

    def allows(self, attempt: int, elapsed: float, wait: float) -> bool:
        """Whether a retry after failed attempt ``attempt`` still fits the policy."""
        return attempt < self.attempts and elapsed + wait <= self.budget


NO_RETRIES = RetryPolicy(retries=0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delay-seconds or an HTTP date; None if absent
    or unreadable (then the policy's own backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def policy_from(retries: int | None = None) -> RetryPolicy:
    """The policy for ``--retries N``, else ``$MONOGRES_RETRIES``, else the default."""
    if retries is None:
        raw = os.environ.get(ENV_RETRIES, "").strip()
        if not raw:
            return RetryPolicy()
        if not raw.isdigit():
            raise UsageError(f"{ENV_RETRIES}={raw!r} is not a whole number of retries "
                             f"(e.g. {ENV_RETRIES}={DEFAULT_RETRIES}; 0 turns retries off)")
        retries = int(raw)
    if retries < 0 or retries > 100:
        raise UsageError(f"--retries {retries}: give 0 to 100 (0 turns retries off)")
    return RetryPolicy(retries=retries)

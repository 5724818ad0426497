"""Memoization of text functions whose memory stays bounded on long texts.

Scorers cache their per-text work (a reference is analysed once, whichever adapter's output
it is compared with). A count-bounded cache is right for sentences and wrong for whole
consultations: 16,384 analysed transcripts of 1,500 words hold gigabytes. Calls whose text
arguments are long go to a small cache of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: characters of text arguments above which a call counts as long (~300 words)
LONG_TEXT = 2_000


def text_cache(short: int = 1 << 14, long: int = 64) -> Callable[[F], F]:
    """lru_cache with `short` entries for calls on short texts and `long` for the others."""

    def deco(fn: F) -> F:
        small, large = lru_cache(maxsize=short)(fn), lru_cache(maxsize=long)(fn)

        @wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            size = sum(len(a) for a in (*args, *kwargs.values()) if isinstance(a, str))
            return (large if size > LONG_TEXT else small)(*args, **kwargs)

        def cache_clear() -> None:
            small.cache_clear()
            large.cache_clear()

        call.cache_clear = cache_clear  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return deco

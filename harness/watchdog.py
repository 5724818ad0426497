"""A time limit for scorers that costs almost nothing per item.

Scorers run on the event loop's thread (a thread hop or a coroutine per item would cost
more than most scorings). A daemon thread watches when the current scoring began and, past
the limit, interrupts the main thread with SIGALRM; the handler raises `TimeLimitExceeded`
inside the scorer only while one is running. Per scoring: two attribute writes.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any


class TimeLimitExceeded(BaseException):
    """A scorer (or a prompt template) ran past its time limit on one item. Not an Exception:
    a scorer's own `except Exception` would swallow it and run on, and Jinja's turns it into
    a TypeError while rewriting the template's traceback."""


class Watchdog:
    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self._since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: Any = None
        self._what = "scorer"
        self._context = _Limit(self)
        self.active = False

    def __enter__(self) -> Watchdog:
        if (self.timeout_s and hasattr(signal, "pthread_kill")
                and threading.current_thread() is threading.main_thread()):
            self._main = threading.main_thread().ident
            self._previous = signal.signal(signal.SIGALRM, self._expire)
            self._thread = threading.Thread(target=self._watch, name="scorer-watchdog", daemon=True)
            self._thread.start()
            self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            signal.signal(signal.SIGALRM, self._previous)
            self.active = False

    def limit(self, what: str = "scorer") -> _Limit:
        """Run the body under the time limit (a no-op where the watchdog is not active);
        `what` names it in the error."""
        self._what = what
        return self._context

    def _watch(self) -> None:
        assert self.timeout_s is not None
        tick = min(0.05, self.timeout_s / 4)
        while not self._stop.wait(tick):
            since = self._since
            if since is not None and time.monotonic() - since > self.timeout_s:
                signal.pthread_kill(self._main, signal.SIGALRM)  # type: ignore[arg-type]
                self._stop.wait(tick)  # one signal per overrun; the handler clears `_since`

    def _expire(self, *_: Any) -> None:
        if self._since is not None:  # a late signal after the scorer returned is ignored
            self._since = None
            raise TimeLimitExceeded(f"{self._what} ran past {self.timeout_s:g} s")


class _Limit:
    """`Watchdog.limit`'s context: two attribute writes (a generator-based context manager
    cost a microsecond more, on every scorer of every item)."""

    __slots__ = ("watchdog",)

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog

    def __enter__(self) -> None:
        self.watchdog._since = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.watchdog._since = None

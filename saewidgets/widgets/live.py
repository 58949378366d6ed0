"""Live requests for widgets: a worker thread that runs the newest request only.

A widget submits a job each time its inputs change. Submissions are debounced
on both edges: a lone submission starts at once, while one that follows another
within ``debounce`` seconds waits until none has come for that long. Each gets
an increasing id, and a newer submission supersedes every older one: a job that
has not started is dropped, a running job stops at its next ``ticket.check()``,
and ``ticket.publish`` writes a result only while the ticket is still the newest
(under the runner's lock, so a stale result can never land after a newer
request was made). The kernel's main thread only submits, so it stays free.

nnsight cannot run two traces on the same model at once, so jobs that trace a
model take ``model_lock(model)`` (``saewidgets.core.locks``, re-exported here).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..core.locks import model_lock  # re-exported: it lived here first

log = logging.getLogger(__name__)

__all__ = ["LatestRequestRunner", "Superseded", "Ticket", "model_lock"]


class Superseded(Exception):
    """Raised by ``Ticket.check`` when a newer request has replaced this one."""


class Ticket:
    """A handle on one request: is it still the newest, and publishing while it is."""

    def __init__(self, request_id: int, runner: "LatestRequestRunner") -> None:
        self.id = request_id
        self._runner = runner

    @property
    def current(self) -> bool:
        return self._runner.latest == self.id and not self._runner.closed

    def check(self) -> None:
        """Raise ``Superseded`` if a newer request has been submitted."""
        if not self.current:
            raise Superseded(f"request {self.id} was superseded by request {self._runner.latest}")

    def publish(self, apply: Callable[[], None]) -> bool:
        """Run ``apply`` (which sets traits) only if this request is still the newest."""
        with self._runner._cond:
            if not self.current:
                return False
            apply()
            return True


Job = Callable[[Ticket], None]


class LatestRequestRunner:
    """Runs submitted jobs one at a time on a daemon thread; only the newest one matters.

    ``on_busy(flag)`` is called (from whichever thread changes it) when the runner
    goes from idle to busy and back.
    """

    def __init__(self, debounce: float = 0.05, on_busy: Callable[[bool], None] | None = None,
                 name: str = "saewidgets-live") -> None:
        if not debounce >= 0:
            raise ValueError(f"debounce must be >= 0 seconds, got {debounce!r}")
        self.debounce = float(debounce)
        self.on_busy = on_busy
        self.name = name
        self.latest = 0
        self.closed = False
        self._cond = threading.Condition(threading.RLock())
        self._pending: tuple[int, Job] | None = None
        self._submitted_at = -float("inf")
        self._wait_until = 0.0
        self._running: int | None = None
        self._busy = False
        self._thread: threading.Thread | None = None

    # -- API ------------------------------------------------------------------------
    def submit(self, job: Job) -> Ticket:
        """Queue ``job`` as the newest request (superseding the others); returns its ticket."""
        with self._cond:
            if self.closed:
                raise RuntimeError("this runner is closed")
            self.latest += 1
            self._pending = (self.latest, job)
            now = time.monotonic()
            in_burst = now - self._submitted_at < self.debounce
            self._wait_until = now + self.debounce if in_burst else now
            self._submitted_at = now
            self._set_busy(True)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return Ticket(self.latest, self)

    def run_now(self, job: Job) -> Ticket:
        """Run ``job`` in the calling thread as the newest request (superseding the others)."""
        with self._cond:
            if self.closed:
                raise RuntimeError("this runner is closed")
            self.latest += 1
            self._pending = None
            ticket = Ticket(self.latest, self)
            self._set_busy(True)
        try:
            job(ticket)
        except Superseded:
            pass
        finally:
            with self._cond:
                if self._pending is None and self._running is None:
                    self._set_busy(False)
                self._cond.notify_all()
        return ticket

    def cancel(self) -> None:
        """Supersede every request (a running job stops at its next check)."""
        with self._cond:
            self.latest += 1
            self._pending = None
            if self._running is None:
                self._set_busy(False)
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is pending or running; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._running is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    @property
    def busy(self) -> bool:
        return self._busy

    def close(self) -> None:
        """Stop the worker thread (after its current job stops)."""
        with self._cond:
            self.closed = True
            self._pending = None
            self._cond.notify_all()

    # -- worker ---------------------------------------------------------------------
    def _set_busy(self, flag: bool) -> None:
        if flag != self._busy:
            self._busy = flag
            if self.on_busy is not None:
                try:
                    self.on_busy(flag)
                except Exception:  # a display callback must not kill the worker
                    log.exception("on_busy callback failed")

    def _next_job(self) -> tuple[int, Job] | None:
        with self._cond:
            while True:
                if self.closed:
                    return None
                if self._pending is None:
                    self._cond.wait()
                    continue
                remaining = self._wait_until - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)  # a newer submission may move the deadline
                    continue
                request, job = self._pending
                self._pending = None
                self._running = request
                return request, job

    def _loop(self) -> None:
        while True:
            picked = self._next_job()
            if picked is None:
                return
            request, job = picked
            try:
                job(Ticket(request, self))
            except Superseded:
                pass
            except Exception:  # jobs report their own errors; this is a last resort
                log.exception("live job %s failed", request)
            finally:
                with self._cond:
                    self._running = None
                    if self._pending is None:
                        self._set_busy(False)
                    self._cond.notify_all()

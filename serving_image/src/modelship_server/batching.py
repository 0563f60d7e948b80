"""Merging concurrent requests into one predict call.

A scikit-learn predict costs about the same for one row as for thirty-two (its fixed cost is input
validation), so under concurrency the server predicts whatever requests arrived together in one call.

The policy is adaptive. A request that finds nothing else queued is predicted at the end of the current
event-loop turn, without waiting. Requests that arrive together, or while a predict is running, form the
next batch. Only when several are already queued may the batch wait up to ``max_wait_s`` (counted from
the oldest) for more, and it never waits once it holds ``max_batch_size`` requests.

Where predict runs is adaptive too: fast models (the common case: well under a millisecond) predict on
the event-loop thread, which is cheapest; a slow model moves to a helper thread so that health checks,
SIGTERM and reading new requests are not held up behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from modelship_server.predictor import InputRejected, Predictor

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray[Any, Any]]
Result = Outputs | BaseException
Deliver = Callable[[Result], None]

# Predicts averaging more than this run on the helper thread.
_INLINE_LIMIT_S = 0.002


class Job:
    __slots__ = ("deliver", "enqueued", "finite", "outputs", "x")

    def __init__(
        self,
        x: np.ndarray[Any, Any],
        outputs: tuple[str, ...],
        finite: bool,
        deliver: Deliver,
        enqueued: float,
    ) -> None:
        self.x = x
        self.outputs = outputs
        self.finite = finite
        self.deliver = deliver
        self.enqueued = enqueued


class Batcher:
    def __init__(
        self,
        predictor: Predictor,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None],
        offload: str = "auto",
    ) -> None:
        self._predictor = predictor
        self._loop = loop
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._offload = offload
        self._pending: list[Job] = []
        self._busy = False
        self._tick_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._executor: ThreadPoolExecutor | None = None
        # Seconds per predict call, smoothed; None until the first call (which goes to the helper
        # thread: the model is not known to be fast yet).
        self._predict_s: float | None = None

    def submit(self, x: np.ndarray[Any, Any], outputs: tuple[str, ...], deliver: Deliver) -> None:
        """Queue rows for prediction; ``deliver`` is later called, on the loop, with outputs or an error."""
        finite = x.dtype.kind != "f" or bool(np.isfinite(x).all())
        self._pending.append(Job(x, outputs, finite, deliver, self._loop.time()))
        if self._busy:
            return
        if len(self._pending) >= self.max_batch_size:
            self._flush()
        elif not self._tick_scheduled:
            self._tick_scheduled = True
            self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        # Runs after the loop has read every request that arrived in this turn.
        self._tick_scheduled = False
        if self._busy or not self._pending or self._timer is not None:
            return
        queued = len(self._pending)
        if self.max_wait_s > 0 and 1 < queued < self.max_batch_size:
            deadline = self._pending[0].enqueued + self.max_wait_s
            if deadline > self._loop.time():
                self._timer = self._loop.call_at(deadline, self._on_timer)
                return
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        if not self._busy and self._pending:
            self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs = self._pending[: self.max_batch_size]
        del self._pending[: self.max_batch_size]
        if self._should_offload():
            self._busy = True
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
            future = self._loop.run_in_executor(self._executor, self._run, jobs)
            future.add_done_callback(lambda done: self._finish(jobs, done.result()))
        else:
            self._finish(jobs, self._run(jobs))

    def _should_offload(self) -> bool:
        if self._offload == "auto":
            return self._predict_s is None or self._predict_s > _INLINE_LIMIT_S
        return self._offload == "always"

    def _finish(self, jobs: list[Job], timed: tuple[list[Result], float]) -> None:
        results, elapsed = timed
        self._busy = False
        self._predict_s = elapsed if self._predict_s is None else 0.8 * self._predict_s + 0.2 * elapsed
        self._on_batch(len(jobs), elapsed)
        for job, result in zip(jobs, results, strict=True):
            try:
                job.deliver(result)
            except Exception:
                # A failure to answer one request must not leave the rest of its batch unanswered.
                log.exception("delivering a prediction failed")
        if self._pending:
            # These arrived while the batch ran: they have waited already.
            self._flush()

    def _run(self, jobs: list[Job]) -> tuple[list[Result], float]:
        """Predict all jobs, merging those whose rows can be stacked; never raises (runs on any thread)."""
        started = time.perf_counter()
        results: list[Result | None] = [None] * len(jobs)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, job in enumerate(jobs):
            # Non-finite rows go alone: if the model refuses them, no other request fails with them.
            key = (job.x.dtype, job.x.shape[1:]) if job.finite else ("alone", index)
            groups.setdefault(key, []).append(index)
        for members in groups.values():
            if len(members) == 1:
                results[members[0]] = self._predict_one(jobs[members[0]])
            else:
                for index, result in zip(
                    members, self._predict_merged([jobs[i] for i in members]), strict=True
                ):
                    results[index] = result
        return [
            r if r is not None else RuntimeError("no result") for r in results
        ], time.perf_counter() - started

    def _predict_one(self, job: Job) -> Result:
        try:
            return self._predictor.predict(job.x, job.outputs, finite=job.finite)
        except Exception as error:
            return error

    def _predict_merged(self, jobs: list[Job]) -> list[Result]:
        names = tuple(dict.fromkeys(name for job in jobs for name in job.outputs))
        stacked = np.concatenate([job.x for job in jobs])
        try:
            merged = self._predictor.predict(stacked, names, finite=True)
        except InputRejected:
            # One request's rows broke the batch: predict each alone so only that one fails.
            return [self._predict_one(job) for job in jobs]
        except Exception as error:
            return [error] * len(jobs)
        if any(len(array) != len(stacked) for array in merged.values()):
            return [self._predict_one(job) for job in jobs]
        results: list[Result] = []
        start = 0
        for job in jobs:
            end = start + len(job.x)
            results.append({name: merged[name][start:end] for name in job.outputs})
            start = end
        return results

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)

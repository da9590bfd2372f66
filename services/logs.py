"""Structured logs: one JSON object per line on stderr, with the service and region."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import OrderedDict
from typing import Any


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            **self.fields,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(service: str, region: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter({"service": service, "region": region}))
    logger = logging.getLogger(service)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger


def event(logger: logging.Logger, message: str, **fields: Any) -> None:
    logger.info(message, extra={"fields": fields})


class Throttle:
    """At most one log line per key (a kind of refusal) per interval, and at most `lines` in
    all per interval, each carrying how many of its key were not logged since, so whoever
    sends many bad requests cannot flood the log. Keys must be the service's own words, never
    what a caller wrote (infra/callers.py); those kept are bounded, the one unseen longest is
    forgotten first."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_seconds: float = 60.0,
        keys: int = 64,
        lines: int = 6,
    ) -> None:
        self.logger = logger
        self.interval = interval_seconds
        self.keys = keys
        self.lines = lines
        self.total = 0
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._window = (-math.inf, 0)  # when the current interval began, lines logged in it

    def event(
        self,
        key: str,
        message: str,
        *,
        now: float | None = None,
        level: int = logging.INFO,
        **fields: Any,
    ) -> bool:
        """Counts one; logs it (True) unless this key was logged within the interval or the
        interval's lines are spent."""
        self.total += 1
        now = time.monotonic() if now is None else now
        began, logged_lines = self._window
        if now - began >= self.interval:
            began, logged_lines = now, 0
        last, unlogged = self._seen.pop(key, (-math.inf, 0))
        unlogged += 1
        logged = now - last >= self.interval and logged_lines < self.lines
        if logged:
            self.logger.log(
                level,
                message,
                extra={"fields": {**fields, "since_last_log": unlogged, "total": self.total}},
            )
            last, unlogged = now, 0
            logged_lines += 1
        self._window = (began, logged_lines)
        self._seen[key] = (last, unlogged)
        while len(self._seen) > self.keys:
            self._seen.popitem(last=False)
        return logged

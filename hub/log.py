"""structlog configuration: JSON lines on stderr, dotted event names, never payloads or keys."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO, cast

import structlog

LEVEL_ENV = "GOVHUB_LOG_LEVEL"


def configure(default_level: str = "WARNING") -> None:
    """Configure structlog once per process; GOVHUB_LOG_LEVEL overrides the default level."""
    level_name = os.environ.get(LEVEL_ENV, default_level).upper()
    level = logging.getLevelNamesMapping().get(level_name, logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        cache_logger_on_first_use=True,
    )


class _Stderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured.

    A process that swaps stderr (a test capturing output, a daemon redirecting it) would
    otherwise keep writing to the stream it replaced, which may be closed by then.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

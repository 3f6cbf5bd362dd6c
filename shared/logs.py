"""Logging for every process the command line starts: plain text, or JSON lines on request.

Each line of a gateway request carries its request id (`request_id`, from the X-Request-ID
middleware; "-" outside requests). Nothing here logs prompts or keys: code logs a key by its id.
"""

from __future__ import annotations

import logging

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.json import JsonFormatter

from shared.settings import Settings

_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class _RequestId(CorrelationIdFilter):
    """The request id under a plain name, for both formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        record.request_id = record.__dict__.pop("correlation_id")
        return True


def configure(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_RequestId(default_value="-"))
    if settings.log_json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    # httpx logs each request's URL at INFO: an image a prompt links to is the prompt's content,
    # and `up`'s console is for the operator.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))

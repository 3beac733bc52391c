"""Logging filters for the console handler (settings ``LOGGING``)."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied


class PermissionDeniedWithoutTraceback(logging.Filter):
    """Django logs every 403 from a ``PermissionDenied`` with its traceback: an expected
    refusal, not a fault, buried the real errors. Keep the one line and add the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, PermissionDenied):
            reason = str(exc)
            record.msg = f"{record.getMessage()}{f' ({reason})' if reason else ''}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True

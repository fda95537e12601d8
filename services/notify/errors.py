"""The errors a notifier raises.

    NotifyError
    ├── NotifyFatal         sending cannot succeed as things are (a 5xx answer, bad config)
    │   └── NotifyConfigError   the notifier's settings are wrong
    └── NotifyRetriable     transient (a 4xx answer, a lost connection); retried first

Messages name the SMTP reply code at most, never the server's text, which may echo the
recipient's address.
"""

from __future__ import annotations


class NotifyError(Exception):
    """Base class of every notifier error."""

    code = "notify_error"


class NotifyFatal(NotifyError):
    """Sending failed, and sending again will not help."""

    code = "notify_fatal"

    def __init__(self, message: str, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.smtp_code = smtp_code


class NotifyConfigError(NotifyFatal):
    """The notifier is configured wrongly (``DSR_NOTIFIER``, ``DSR_SMTP_URL``)."""

    code = "notify_config"


class NotifyRetriable(NotifyError):
    """A transient failure: sending again later may succeed."""

    code = "notify_retriable"

    def __init__(self, message: str, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.smtp_code = smtp_code

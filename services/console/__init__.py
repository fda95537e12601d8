"""The privacy-ops console: held requests, the deadline calendar, notice and letter
previews, and signed release, refusal and extension decisions (``server.py``)."""

from services.console.server import ConsoleServer

__all__ = ["ConsoleServer"]

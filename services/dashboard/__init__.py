"""The live web dashboard that ``dsr up`` serves (see ``services.dashboard.server``)."""

from services.dashboard.server import Dashboard

__all__ = ["Dashboard"]

"""The three stream processors: intake, fan-out and aggregation.

Each module holds plain handler functions of a ``Pipeline`` context; ``streams.app``
wires them to Faust agents.
"""

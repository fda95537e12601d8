"""``dsr connector new NAME``: a connector package that passes the conformance kit at once.

The generated connector is a working in-memory example with every place to
replace marked ``TODO``; its test file is one ``conformance_tests`` call.
"""

from services.scaffold.render import Names, ScaffoldError, create

__all__ = ["Names", "ScaffoldError", "create"]

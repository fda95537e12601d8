"""The conformance kit: the standard tests every connector must pass.

Write a ``Harness`` that seeds a live test instance of your system, then make
the kit's tests yours with one line::

    from connectors.testing import Harness, Seeded, conformance_tests

    class BillingHarness(Harness):
        connector_class = BillingConnector
        system = "billing"

        def config(self): return {"url": ..., "api_token": "t0ken"}
        def seed(self): ...; return Seeded(subject={"email": "a@x.jp"}, other={...})

    TestBillingConformance = conformance_tests(BillingHarness)

See ``docs/connectors.md`` for what each test checks.
"""

from connectors.testing.factory import ConformanceTests, conformance_tests
from connectors.testing.harness import Harness, Seeded

__all__ = ["ConformanceTests", "Harness", "Seeded", "conformance_tests"]

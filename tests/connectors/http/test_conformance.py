from connectors.testing import conformance_tests
from tests.connectors.http.fixtures import HTTPHarness

TestHTTPConformance = conformance_tests(HTTPHarness)

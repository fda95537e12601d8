from connectors.testing import conformance_tests
from tests.connectors.s3.fixtures import S3Harness

TestS3Conformance = conformance_tests(S3Harness)

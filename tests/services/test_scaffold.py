"""``dsr connector new``: the generated connector passes the kit, and fails it readably.

Each run is a real ``pytest`` in a subprocess, on the generated package as it
is on disk, the way its author will run it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.scaffold import Names, ScaffoldError, create

CONNECTOR = "dsr_connector_billing/connector.py"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return create("billing", tmp_path / "dsr-connector-billing")


def kit(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the generated package's tests, importing it from where it was written."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def replace_method(root: Path, method: str, body: str, path: str = CONNECTOR) -> None:
    """Replace the body of ``method`` (after its docstring) with ``body``."""
    file = root / path
    lines = file.read_text().splitlines()
    tree = ast.parse(file.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == method)
    first = node.body[1] if ast.get_docstring(node) else node.body[0]
    indent = " " * first.col_offset
    new = [indent + line for line in body.strip("\n").splitlines()]
    lines[first.lineno - 1 : node.end_lineno] = new
    file.write_text("\n".join(lines) + "\n")


def test_the_package_has_what_an_author_needs(package: Path) -> None:
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "dsr_connector_billing/__init__.py",
        "dsr_connector_billing/connector.py",
        "dsr_connector_billing/example_store.py",
        "pyproject.toml",
        "tests/test_conformance.py",
    ]
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["dsr.connectors"] == {
        "billing": "dsr_connector_billing.connector:BillingConnector"
    }
    assert project["project"]["dependencies"][0].startswith("dsr-pipeline")
    source = (package / CONNECTOR).read_text()
    assert "class BillingConfig(BaseModel)" in source
    assert "class BillingConnector(Connector[BillingConfig])" in source
    assert source.count("# TODO: replace the in-memory store with calls to your system") == 7
    tests = (package / "tests/test_conformance.py").read_text()
    assert "TestBillingConformance = conformance_tests(BillingHarness)" in tests
    readme = (package / "README.md").read_text()
    assert "1. **See it pass.**" in readme and "3. **Run the kit" in readme
    assert "${BILLING_API_TOKEN}" in readme


def test_the_generated_package_is_lint_clean(package: Path, tmp_path: Path) -> None:
    """The templates are code: rendered, they pass ruff (pyflakes, pycodestyle, isort,
    bugbear, pyupgrade; formatted) and mypy --strict, as an author's CI would run them."""
    ruff = [sys.executable, "-m", "ruff"]
    style = ["--isolated", "--line-length", "100"]
    checks = [
        [*ruff, "check", *style, "--select", "E,F,I,B,UP", "."],
        [*ruff, "format", "--check", *style, "."],
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy"), "."],
    ]
    env = {**os.environ, "MYPYPATH": str(Path(__file__).parents[2])}
    for argv in checks:
        done = subprocess.run(argv, cwd=package, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(argv[2:4])}:\n{done.stdout}{done.stderr}"


def test_the_generated_connector_passes_the_kit_as_it_is(package: Path) -> None:
    run = kit(package)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "16 passed, 1 skipped" in run.stdout  # the trace and concurrency checks included
    assert "declares every kind" in run.stdout  # the one skip says why


def test_an_async_connector_passes_the_same_kit(package: Path) -> None:
    source = (package / CONNECTOR).read_text()
    source = source.replace("    Connector,\n", "    AsyncConnector,\n", 1).replace(
        "(Connector[BillingConfig])", "(AsyncConnector[BillingConfig])"
    )
    for method in ("check", "disclose", "third_party_records", "correct", "suspend", "erase"):
        source = source.replace(f"    def {method}(", f"    async def {method}(")
    source = source.replace("    def stop_third_party", "    async def stop_third_party")
    assert source.count("    async def ") == 7
    (package / CONNECTOR).write_text(source)

    run = kit(package)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "16 passed, 1 skipped" in run.stdout  # the trace and concurrency checks included


def test_an_unwritten_method_fails_naming_it(package: Path) -> None:
    replace_method(package, "erase", 'raise NotImplementedError("TODO: erase in billing")')

    run = kit(package)

    assert run.returncode == 1
    assert "connector.erase() is not implemented yet: TODO: erase in billing" in run.stdout
    assert "Traceback" not in run.stdout
    assert "test_erasure_empties_the_disclosure_and_is_idempotent" in run.stdout
    assert "test_check_is_ok" not in run.stdout  # the rest still passes
    assert "6 failed, 10 passed, 1 skipped" in run.stdout  # the trace check erases too


def test_an_unwritten_harness_fails_naming_it(package: Path) -> None:
    replace_method(
        package,
        "break_transiently",
        'raise NotImplementedError("TODO: make billing fail")\nyield',
        path="tests/test_conformance.py",
    )
    run = kit(package)
    assert run.returncode == 1
    assert (
        "BillingHarness.break_transiently() is not implemented yet: TODO: make billing fail"
        in run.stdout
    )


LEAKY_DISCLOSE = """
customer = self._customers().get(identifiers.get("email", ""))
if customer is None:
    return OperationResult()
records = [{**customer["profile"], "processing_suspended": customer["suspended"],
            "_source": "customers"}]
records += [{**i, "_source": "invoices"} for c in self._customers().values() for i in c["invoices"]]
return OperationResult(records=records)
"""


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        (
            "disclose",
            LEAKY_DISCLOSE,
            "  - a record it also returns for the other person: "
            '{"_source": "invoices", "amount_jpy": 5600, "number": "INV-2001"}',
        ),
        (
            "suspend",
            "return OperationResult(changed=1, dry_run=dry_run)",
            "after suspend(), the subject does not show as suspended (the default "
            "Harness.is_suspended() looks in disclose()",
        ),
        (
            "_customers",
            'if not self.store.reachable:\n    raise ConnectionError("refused")\n'
            "return self.store.customers",
            "connector.disclose() raised ConnectionError (refused) while the system was "
            "failing transiently; catch it and raise RetriableError",
        ),
    ],
    ids=["leaks", "suspends-invisibly", "misclassifies"],
)
def test_a_misbehaving_connector_fails_the_kit_readably(
    package: Path, method: str, body: str, message: str
) -> None:
    replace_method(package, method, body)

    run = kit(package)

    assert run.returncode == 1, run.stdout
    assert message in run.stdout, run.stdout
    assert "Traceback" not in run.stdout


def test_a_secret_in_repr_fails_the_kit(package: Path) -> None:
    source = (package / CONNECTOR).read_text()
    leak = (
        "    def __repr__(self) -> str:\n"
        "        return f'<token={self.config.api_token.get_secret_value()}>'\n\n"
    )
    anchor = "    def check(self) -> CheckResult:\n"
    (package / CONNECTOR).write_text(source.replace(anchor, leak + anchor))

    run = kit(package)

    assert "a secret is shown:\n  - Harness.secrets()[0] (ex…) appears in repr(connector)" in (
        run.stdout
    )
    assert "example-token-never-shown" not in run.stdout


def test_erasure_that_is_not_idempotent_fails_the_kit(package: Path) -> None:
    source = (package / CONNECTOR).read_text()
    patched = source.replace(
        "            return OperationResult(dry_run=dry_run)  # already erased, or never known",
        "            return OperationResult(changed=1, dry_run=dry_run)",
    )
    assert patched != source
    (package / CONNECTOR).write_text(patched)

    run = kit(package)

    assert "erase() changed 1 more on a second run; erasure must be idempotent" in run.stdout
    assert (
        "connector.erase() returned 0 record(s) and changed 1 for identifiers nobody" in run.stdout
    )


@pytest.mark.parametrize(
    ("name", "package_name", "cls"),
    [
        ("billing", "dsr_connector_billing", "Billing"),
        ("billing-eu", "dsr_connector_billing_eu", "BillingEu"),
    ],
)
def test_names(name: str, package_name: str, cls: str) -> None:
    names = Names.of(name)
    assert (names.dist, names.package, names.cls) == (f"dsr-connector-{name}", package_name, cls)


@pytest.mark.parametrize("name", ["Billing", "1billing", "billing.eu", "", "billing-"])
def test_a_bad_name_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="use lowercase letters and digits"):
        create(name, tmp_path / "x")


def test_an_existing_directory_is_left_alone(package: Path) -> None:
    with pytest.raises(ScaffoldError, match="already exists and is not empty"):
        create("billing", package)


def test_dsr_connector_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    result = runner.invoke(app, ["connector", "new", "billing"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dsr-connector-billing/dsr_connector_billing/connector.py").exists()
    assert "1. cd dsr-connector-billing && pytest" in result.output

    result = runner.invoke(app, ["connector", "new", "billing", "--dir", "elsewhere"])
    assert result.exit_code == 0 and (tmp_path / "elsewhere/pyproject.toml").exists()

    again = runner.invoke(app, ["connector", "new", "billing"])
    assert again.exit_code == 2 and "already exists" in again.output

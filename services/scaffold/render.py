"""Write a new connector package from the templates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: The package's files, as templates (``{{name}}``, ``{{package}}``, ``{{Class}}`` ...).
TEMPLATES = Path(__file__).parent / "templates"
NAME = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*")


class ScaffoldError(ValueError):
    """The connector cannot be created; the message says why."""


@dataclass(frozen=True)
class Names:
    """What the name ``billing`` becomes in the generated package."""

    name: str  # billing: the entry point, and ``connector:`` in the data map
    dist: str  # dsr-connector-billing
    package: str  # dsr_connector_billing
    cls: str  # Billing: BillingConnector, BillingConfig, BillingHarness

    @classmethod
    def of(cls, name: str) -> Names:
        if not NAME.fullmatch(name):
            raise ScaffoldError(
                f"connector name {name!r}: use lowercase letters and digits, "
                "separated by - or _ (e.g. billing, billing-eu)"
            )
        words = re.split(r"[_-]", name)
        return cls(
            name=name,
            dist=f"dsr-connector-{name}",
            package=f"dsr_connector_{'_'.join(words)}",
            cls="".join(w.capitalize() for w in words),
        )

    def render(self, template: str) -> str:
        tokens = {
            "{{name}}": self.name,
            "{{dist}}": self.dist,
            "{{package}}": self.package,
            "{{Class}}": self.cls,
            "{{ENV}}": "_".join(re.split(r"[_-]", self.name)).upper(),
            "{{version}}": _pipeline_version(),
        }
        for token, value in tokens.items():
            template = template.replace(token, value)
        return template


def create(name: str, directory: Path | None = None) -> Path:
    """Write the package for ``name`` into ``directory`` (default ``./dsr-connector-NAME``)."""
    names = Names.of(name)
    root = directory if directory is not None else Path(names.dist)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{root} already exists and is not empty")
    files = {
        "pyproject.toml": "pyproject.toml",
        "README.md": "README.md",
        f"{names.package}/__init__.py": "package_init.py",
        f"{names.package}/connector.py": "connector.py",
        f"{names.package}/example_store.py": "example_store.py",
        "tests/test_conformance.py": "test_conformance.py",
    }
    for path, template in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (TEMPLATES / f"{template}.tmpl").read_text(encoding="utf-8")
        target.write_text(names.render(text), encoding="utf-8")
    return root


def _pipeline_version() -> str:
    try:
        return version("dsr-pipeline")
    except PackageNotFoundError:
        return "0.1.0"

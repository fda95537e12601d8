"""The generated ``pyproject.toml`` and ``README.md``."""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{{dist}}"
version = "0.1.0"
description = "The {{name}} connector for dsr-pipeline"
requires-python = ">=3.11"
dependencies = ["dsr-pipeline>={{version}}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# dsr-pipeline finds connectors through this entry point; `connector: {{name}}` in the data map.
[project.entry-points."dsr.connectors"]
{{name}} = "{{package}}.connector:{{Class}}Connector"

[tool.setuptools.packages.find]
include = ["{{package}}*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""

README = """\
# {{dist}}

The `{{name}}` connector for dsr-pipeline: it answers data-subject requests
(disclosure, correction, suspension, erasure, third-party records) in {{name}}.

It starts as a working in-memory example, so its conformance tests pass before
you change anything. Three steps make it yours:

1. **See it pass.** In an environment with dsr-pipeline and pytest, run `pytest`.
2. **Replace the in-memory store with calls to {{name}}**, one method at a time,
   in `{{package}}/connector.py` (every place is marked `TODO`), and seed a test
   instance of {{name}} in `tests/test_conformance.py`. A method you have not
   written yet should `raise NotImplementedError("TODO: ...")`: `pytest` then
   names it. Keep only the kinds {{name}} can answer in `capabilities`, and
   delete `{{package}}/example_store.py` when nothing uses it.
3. **Run the kit and register the system.** `pytest` until it passes. Then
   `pip install -e .` where the pipeline runs (dsr finds the connector through
   its entry point), add the system to the data map and run `dsr connector check`:

   ```yaml
   systems:
     {{name}}:
       connector: {{name}}
       identifiers: [email]
       config:
         store: production          # your Config's fields
         api_token: ${{{ENV}}_API_TOKEN}
   ```

The guide, with a worked example: `docs/connectors.md` in dsr-pipeline.
"""

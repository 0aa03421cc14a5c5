"""The suite's release version (pyproject.toml's `version`; images do not install the package)."""

VERSION = "0.1.0"

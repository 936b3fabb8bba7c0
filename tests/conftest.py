"""Test-wide setup: Qt renders offscreen unless the caller asks for a platform.

This runs before any test module imports Qt, which is when Qt reads the variable.
To watch GUI tests on a real (or Xvfb) display: QT_QPA_PLATFORM=xcb make test
"""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """Projects exported once per session and shared by the export and import tests (export_models.py)."""
    from export_models import ExportCache

    return ExportCache(tmp_path_factory.mktemp("exports"))

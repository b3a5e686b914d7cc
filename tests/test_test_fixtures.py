"""The suite's own guarantees: a monitor a test makes never outlives the test, pass or fail."""

from __future__ import annotations

import pytest

from .conftest import ROOT

pytest_plugins = ["pytester"]


@pytest.fixture
def suite(pytester):
    """A throw-away test directory with this suite's conftest.py."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    return pytester


def test_a_monitor_from_the_monitors_fixture_is_shut_down_even_when_its_test_fails(suite):
    suite.makepyfile(
        """
        made = []

        def test_fails(monitors):
            app, monitor = monitors.app()
            made.append(monitor)
            assert False, "the test's own failure"

        def test_next():
            assert made[0].pipeline._shutdown_done
        """
    )
    result = suite.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the test's own failure*"])


def test_a_test_that_leaves_a_pipeline_running_fails_and_the_pipeline_is_shut_down(suite):
    suite.makepyfile(
        """
        from conftest import build_app

        made = []

        def test_leaks():
            app, monitor = build_app(service_name="leaky")
            made.append(monitor)

        def test_next():
            assert made[0].pipeline._shutdown_done
        """
    )
    result = suite.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_leaks*left 1 pipeline(s) running (leaky)*"])

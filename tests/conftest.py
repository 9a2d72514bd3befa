"""Shared test setup: the loopback testbed fixtures (tests/testbed/fixtures.py)."""

pytest_plugins = ["tests.testbed.fixtures"]

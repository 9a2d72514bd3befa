"""Shared test setup: the loopback testbed fixtures (tests/testbed/fixtures.py) and every-cluster runs."""

pytest_plugins = ["tests.testbed.fixtures", "tests.every_cluster"]

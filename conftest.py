"""Plugins for the plugin's own tests: pytester and the throw-away project fixtures."""

pytest_plugins = ["pytester", "tests.explore_testing"]

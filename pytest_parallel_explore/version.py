"""The plugin's version, apart so that modules can name it without importing the package."""

__version__ = "0.3.0"

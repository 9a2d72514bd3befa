"""threshold-probe: find and explain where remote Python function execution breaks down."""

__version__ = "0.1.0"

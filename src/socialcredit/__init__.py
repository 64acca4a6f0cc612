"""socialcredit: a social credit system built to be inspected."""

__version__ = "0.1.0"

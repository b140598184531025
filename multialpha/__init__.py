"""multialpha: a runtime for several futures strategies side by side."""

__version__ = "0.1.0"

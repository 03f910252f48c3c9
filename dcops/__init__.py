"""dcops: the operations tool of a national government data centre."""

__version__ = "0.1.0"

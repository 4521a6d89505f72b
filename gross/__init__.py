"""gross: Group-Size Series (GroSS) decomposition for grouped architecture search."""

__version__ = "0.1.0"

"""Tables and figures of the paper: :mod:`.tables` (formatting) and :mod:`.plots` (matplotlib)."""

"""Deprecated entry point: ``python -m gross.table4`` runs :mod:`gross.pipeline.table4` (Table 4, ImageNet).

Kept so that existing ``torchrun ... -m gross.table4`` commands keep working; new code
imports :mod:`gross.pipeline.table4`.
"""

from __future__ import annotations

from .pipeline.table4 import main

__all__ = ["main"]

if __name__ == "__main__":
    main()

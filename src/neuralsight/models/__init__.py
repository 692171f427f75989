"""Decoders (responses -> images) and encoders (images -> responses), by name.

Importing this package imports every model, so `DECODERS` and `ENCODERS` list them all.
"""

from neuralsight.models import decoders, encoders
from neuralsight.models.registry import DECODERS, ENCODERS

__all__ = ["DECODERS", "ENCODERS", "decoders", "encoders"]

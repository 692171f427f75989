"""Ground-truth simulators that turn any image or video into realistic neural responses."""

from neuralsight.simulate.chunked import simulate_to_file
from neuralsight.simulate.cortex import CortexSimulator, simulate_cortex
from neuralsight.simulate.retina import RetinaSimulator, RetinaStream, simulate_retina

__all__ = [
    "CortexSimulator",
    "RetinaSimulator",
    "RetinaStream",
    "simulate_cortex",
    "simulate_retina",
    "simulate_to_file",
]

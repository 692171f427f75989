"""Ground-truth simulators that turn any image or video into realistic neural responses.

Every simulator implements the `Simulator` protocol and registers a builder in
`SIMULATORS` (`neuralsight.simulate.base`): the retina (`neuralsight.simulate.retina`)
and the V1/V4/IT cortex (`neuralsight.simulate.cortex`). `simulate_to_file` writes a
recording of any of them chunk by chunk (`neuralsight.simulate.chunked`);
`simulate_video_dataset` records a retina watching videos (`neuralsight.simulate.video`).
"""

from neuralsight.simulate.base import SIMULATORS, Simulator, TrialSampler
from neuralsight.simulate.chunked import simulate_to_file
from neuralsight.simulate.cortex import CortexSimulator, simulate_cortex
from neuralsight.simulate.retina import RetinaSimulator, RetinaStream, simulate_retina
from neuralsight.simulate.video import (
    ContextWindow,
    rebuild_retina,
    simulate_video_dataset,
    stack_context,
)

__all__ = [
    "SIMULATORS",
    "ContextWindow",
    "CortexSimulator",
    "RetinaSimulator",
    "RetinaStream",
    "Simulator",
    "TrialSampler",
    "rebuild_retina",
    "simulate_cortex",
    "simulate_retina",
    "simulate_to_file",
    "simulate_video_dataset",
    "stack_context",
]

"""neuralsight: reconstruct what an eye or a brain saw from neural activity, and back.

Three published systems on one data model: SID (retinal spikes to images and video),
MonkeySee (macaque V1/V4/IT multi-unit activity to natural images) and FLIG (a flow-based
invertible encoder-decoder), with simulators, readers for real recordings and one
evaluation suite.
"""

from neuralsight.data import NeuralDataModule, NeuralDataset

__version__ = "0.1.0"

__all__ = ["NeuralDataModule", "NeuralDataset", "__version__"]

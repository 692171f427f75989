"""Decoders: responses -> images, each a LightningModule with the same small surface."""

from neuralsight.models.decoders.base import Decoder, ResponseScaler
from neuralsight.models.decoders.feature import FeatureDecoder, FeaturePrior
from neuralsight.models.decoders.flig import FLIG, FeatureAutoencoder
from neuralsight.models.decoders.inversion import EncoderInversionDecoder
from neuralsight.models.decoders.monkeysee import MonkeySee
from neuralsight.models.decoders.ridge import RidgeDecoder
from neuralsight.models.decoders.sid import SID, ImprovedSID
from neuralsight.models.decoders.video import VideoSID

__all__ = [
    "FLIG",
    "SID",
    "Decoder",
    "EncoderInversionDecoder",
    "FeatureAutoencoder",
    "FeatureDecoder",
    "FeaturePrior",
    "ImprovedSID",
    "MonkeySee",
    "ResponseScaler",
    "RidgeDecoder",
    "VideoSID",
]

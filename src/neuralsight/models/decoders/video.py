"""Video decoding: SID applied frame by frame to a window of recent response bins.

`VideoSID` is `ImprovedSID` over ``n_units * context`` inputs, where a trial's ``n_bins``
axis holds the ``context`` most recent frame bins (the layout of
`neuralsight.simulate.video.simulate_video_dataset`). It records the retina parameters and
the frame interval of the data set it was sized for, so a checkpoint alone can drive a
stream (`neuralsight.simulate.video.rebuild_retina` rebuilds the retina). The published
`SID` trains on the same data set with ``n_inputs = n_units * context``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralsight.data.dataset import NeuralDataset
from neuralsight.models.decoders.sid import ImprovedSID
from neuralsight.models.registry import DECODERS


@DECODERS.register("video_sid")
class VideoSID(ImprovedSID):
    """`ImprovedSID` over a window of ``context`` frame bins, aware of its retina.

    Parameters
    ----------
    n_units
        Units per frame bin (``n_inputs = n_units * context``).
    image_shape
        ``(channels, height, width)`` of the frames.
    context
        Frame bins per input window (see `neuralsight.simulate.video.stack_context`).
    retina
        ``RetinaSimulator.params`` of the simulated retina the model was trained on
        (``None`` for real recordings); `neuralsight.simulate.video.rebuild_retina`
        rebuilds it.
    frame_ms
        Frame interval of the training videos in ms.
    **kwargs
        Any other `ImprovedSID` parameter (``base_channels``, ``depth``, ``lr``, ...).

    Examples
    --------
    >>> import torch
    >>> model = VideoSID(n_units=10, image_shape=(1, 16, 16), context=3, base_channels=4, depth=2)
    >>> model.eval()(torch.rand(2, 10, 3)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self,
        n_units: int,
        image_shape: tuple[int, int, int],
        context: int = 4,
        retina: dict[str, Any] | None = None,
        frame_ms: float = 33.3,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(context, int | np.integer) and context >= 1):
            raise ValueError(f"parameter 'context' must be an integer >= 1, found {context!r}")
        super().__init__(n_inputs=int(n_units) * int(context), image_shape=image_shape, **kwargs)
        self.save_hyperparameters()
        del self.hparams["n_inputs"]  # derived from n_units and context
        self.n_units = int(n_units)
        self.context = int(context)
        self.frame_ms = float(frame_ms)
        self.retina_params = retina

    @classmethod
    def for_dataset(cls, dataset: NeuralDataset, **kwargs: Any) -> VideoSID:
        """A model sized for a `~neuralsight.simulate.video.simulate_video_dataset` result
        (``[n_frames, n_units, context]`` responses), with its retina recorded.

        Examples
        --------
        >>> import numpy as np
        >>> ds = NeuralDataset.from_arrays(np.zeros((4, 8, 2), np.float32),
        ...                                np.zeros((4, 1, 16, 16)), meta={"frame_ms": 20.0})
        >>> model = VideoSID.for_dataset(ds, base_channels=4, depth=2)
        >>> model.n_inputs, model.frame_ms
        (16, 20.0)
        """
        return cls(
            n_units=dataset.n_units,
            image_shape=dataset.image_shape,
            context=dataset.n_bins,
            retina=dataset.meta.get("parameters"),
            frame_ms=float(dataset.meta.get("frame_ms", 33.3)),
            **kwargs,
        )

"""Stimulus sources: the images that simulators, the CLI and the API show to a model brain.

Every source registers itself in `SOURCES` and is reached by name through `make_stimuli`,
which returns float32
``[n, channels, size, size]`` arrays in [0, 1], the ``stimuli`` layout of `NeuralDataset`.
The same seed always gives the same images, and the train and test splits never share an
image (or, for ``natural``, a photograph).

Sources
-------
``digits``
    scikit-learn's bundled 8x8 handwritten digits (1797 images), upsampled smoothly. Every
    `DIGITS_TEST_EVERY`-th sample (index 0, 5, 10, ...) is test, the rest train.
``natural``
    Random crops, at random scales and with random horizontal flips, of the natural
    photographs that ship inside the scikit-image wheel. Whole photographs are held out for
    the test split (`NATURAL_TEST_PHOTOS`), so test crops come from unseen scenes. The files
    are read straight from the scikit-image installation: nothing is ever downloaded.
``deadleaves``
    Procedural dead-leaves scenes: opaque discs with power-law radii (density ~ r^-3) and
    uniform random grey levels or colours, stacked until they cover the image. They share the
    scale invariance and the ~1/f^2 power spectrum of natural images, and are unlimited.
``folder``
    The image files of a folder (searched recursively) or a ``.zip`` archive (read without
    extracting), sorted by relative path, centre-cropped to a square and resized. Where
    ``train.txt`` and ``test.txt`` exist (in ``root``, else beside it; `FOLDER_SPLIT_LISTS`)
    they give the split, whole files apart; without them every `FOLDER_TEST_EVERY`-th file
    (the 10th, 20th, ...) is test, the rest train. See `folder_files` for the rule.
``mnist``, ``cifar10``, ``cifar100``
    The data sets' own train/test split, read from local files under ``root``: torchvision's
    layout, or for ``mnist`` the IDX files directly in ``root``, gzipped or not
    (`read_idx_images`), and for ``cifar*`` a folder or ``.zip`` of
    ``<split>/<class>/*.jpg`` image files (`cifar_image_files`), which may hold one split
    only. They are only downloaded (by torchvision) when ``download=True``.

Grey (``channels=1``) images are the luminance of colour ones (Rec. 709 weights, as in
``skimage.color.rgb2gray``); colour (``channels=3``) images of grey-only sources repeat the
grey level in all three channels, except ``natural``, which then crops colour photographs
only (`NATURAL_COLOUR_PHOTOS`).

A draw too large for memory is made block by block: `stimulus_blocks` cuts it into
`StimulusBlock` recipes (small and picklable, so another process can render them) whose
images, concatenated, are those of `make_stimuli`.

Layout: `blocks` (the `SOURCES` registry, `Draw` and `StimulusBlock`), `common` (parameter
checks, seeded streams, resizing and channels), one module per source (`digits`, `natural`,
`deadleaves`, `folder`, `torchvision_sets`), and `draw` (`make_stimuli`,
`stimulus_blocks`, `describe_source`). A new source is a module that registers its block
maker with `register_source` and is imported here.
"""

from neuralsight.data.sources.blocks import SOURCES, Draw, Source, StimulusBlock, register_source
from neuralsight.data.sources.common import (
    CHANNELS,
    SPLITS,
    as_unit_float,
    center_square,
    check_source_args,
    resize_images,
    source_rng,
    to_channels,
)
from neuralsight.data.sources.deadleaves import (
    DEADLEAVES_R_MAX,
    DEADLEAVES_R_MIN,
    DEADLEAVES_SUPERSAMPLE,
    dead_leaves,
)
from neuralsight.data.sources.digits import DIGITS_TEST_EVERY
from neuralsight.data.sources.draw import describe_source, make_stimuli, stimulus_blocks
from neuralsight.data.sources.folder import (
    FOLDER_SPLIT_LISTS,
    FOLDER_TEST_EVERY,
    IMAGE_EXTENSIONS,
    folder_files,
    folder_split,
    image_files,
    read_images,
    tree_files,
)
from neuralsight.data.sources.natural import (
    NATURAL_COLOUR_PHOTOS,
    NATURAL_MAX_SCALE,
    NATURAL_PHOTO_FILES,
    NATURAL_TEST_PHOTOS,
    NATURAL_TRAIN_PHOTOS,
    load_photo,
    natural_crops,
    natural_photos,
)
from neuralsight.data.sources.torchvision_sets import (
    cifar_image_files,
    read_idx_images,
    torchvision_blocks,
)

__all__ = [
    "CHANNELS",
    "DEADLEAVES_R_MAX",
    "DEADLEAVES_R_MIN",
    "DEADLEAVES_SUPERSAMPLE",
    "DIGITS_TEST_EVERY",
    "FOLDER_SPLIT_LISTS",
    "FOLDER_TEST_EVERY",
    "IMAGE_EXTENSIONS",
    "NATURAL_COLOUR_PHOTOS",
    "NATURAL_MAX_SCALE",
    "NATURAL_PHOTO_FILES",
    "NATURAL_TEST_PHOTOS",
    "NATURAL_TRAIN_PHOTOS",
    "SOURCES",
    "SPLITS",
    "Draw",
    "Source",
    "StimulusBlock",
    "as_unit_float",
    "center_square",
    "check_source_args",
    "cifar_image_files",
    "dead_leaves",
    "describe_source",
    "folder_files",
    "folder_split",
    "image_files",
    "load_photo",
    "make_stimuli",
    "natural_crops",
    "natural_photos",
    "read_idx_images",
    "read_images",
    "register_source",
    "resize_images",
    "source_rng",
    "stimulus_blocks",
    "to_channels",
    "torchvision_blocks",
    "tree_files",
]

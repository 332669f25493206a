"""Media: load and fit input images, export videos and write files atomically."""

from svdlab.media.atomic import atomic_path, write_json_atomic
from svdlab.media.export import VIDEO_FORMATS, encode_video, frames_to_uint8, write_encoded, write_video
from svdlab.media.fit import FIT_MODES, fit_image
from svdlab.media.images import describe_source, load_image, source_stem

__all__ = [
    "FIT_MODES",
    "VIDEO_FORMATS",
    "atomic_path",
    "describe_source",
    "encode_video",
    "fit_image",
    "frames_to_uint8",
    "load_image",
    "source_stem",
    "write_encoded",
    "write_json_atomic",
    "write_video",
]

"""Fixtures for facelab.faces tests.

Tests marked ``faces`` need the offline face packages in the facelab cache
(``facelab fetch``); like the rest of the suite they fail, not skip, when the
cache is missing (the error says to run ``facelab fetch``).
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins (NASA, public domain), shipped inside scikit-image: a real face anywhere."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_faces(astronaut):
    from facelab.faces import load_image

    return load_image(astronaut)


@pytest.fixture
def jpeg_bytes():
    """Encode a uint8 RGB array as JPEG bytes, optionally with an EXIF block."""

    def encode(arr: np.ndarray, quality: int = 95, exif=None) -> bytes:
        buf = io.BytesIO()
        kw = {"exif": exif} if exif is not None else {}
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality, **kw)
        return buf.getvalue()

    return encode

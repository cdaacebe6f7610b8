"""Lossless removal of personal metadata from JPEG files.

APP1 (EXIF, XMP) and APP13 (Photoshop IRB / IPTC) can carry GPS positions,
camera serial numbers and names; they are dropped.  APP0 (JFIF), APP2 (ICC
colour profile) and APP14 (Adobe colour transform) are kept because they
change how the pixels decode.  The entropy-coded image data is copied byte
for byte, so the pixels are exactly those of the original.

Dropping APP1 also drops the EXIF orientation tag: photos that relied on it
are shown as stored.  facelab strips only photos whose orientation tag is
absent or 1 (checked when the face manifest is built).
"""
from __future__ import annotations

_STRIP_MARKERS = {0xE1, 0xED}


def strip_jpeg_metadata(data: bytes) -> bytes:
    """The JPEG ``data`` with its EXIF/XMP/IPTC segments removed, pixels untouched (no re-encoding).

    Raises ``ValueError`` for data that is not a JPEG or whose marker
    structure is broken before the image data starts.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI marker)")
    out = bytearray(b"\xff\xd8")
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"corrupt JPEG: expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            out += data[pos:]
            return bytes(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[pos : pos + 2]
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker not in _STRIP_MARKERS:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    raise ValueError("corrupt JPEG: no image data (SOS marker) found")

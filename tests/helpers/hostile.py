"""Hostile inputs made on the fly (small files that declare or inflate to huge things), for tests and the benchmark.

Nothing here is stored in the repository: each builder writes its bytes from a few parameters, so a test keeps its
hostile file small (a header that lies) and the benchmark builds the full-size ones the issue measured.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
import zlib

import cv2
import numpy as np


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def small_image(ext: str, width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    """A small real image encoded by OpenCV (`.jpg`, `.png`, `.bmp`, `.webp`, `.tiff`)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_WEBP_QUALITY, 80] if ext == ".webp" else []  # lossy (VP8): 100 means lossless
    ok, buf = cv2.imencode(ext, pixels, params)
    assert ok
    return buf.tobytes()


def png_declaring(width: int, height: int, *, complete: bool = True) -> bytes:
    """A black RGB PNG of width x height, compressed row by row (never held decoded); or its header alone."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    if complete:
        packer = zlib.compressobj(9)
        row = bytes(1 + width * 3)  # filter byte + black pixels
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    else:
        data = zlib.compress(bytes(1 + width * 3))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def tiff_declaring(width: int, height: int, *, complete: bool = True) -> bytes:
    """An 8-bit greyscale deflate TIFF of width x height in one strip (30000x30000 is about 900 KB); or a header
    with one compressed row when not `complete`."""
    if complete:
        packer = zlib.compressobj(9)
        row = bytes(width)
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    else:
        data = zlib.compress(bytes(width))
    short, long_ = 3, 4
    entries = [
        (256, long_, width),  # ImageWidth
        (257, long_, height),  # ImageLength
        (258, short, 8),  # BitsPerSample
        (259, short, 8),  # Compression: deflate
        (262, short, 1),  # Photometric: black is zero
        (273, long_, 0),  # StripOffsets, filled below
        (277, short, 1),  # SamplesPerPixel
        (278, long_, height),  # RowsPerStrip
        (279, long_, len(data)),  # StripByteCounts
    ]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        ifd += struct.pack("<HHII", tag, kind, 1, value)  # a SHORT sits in the low bytes (little-endian)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) is rewritten to declare width x height."""
    data = bytearray(small_image(".jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    """A small BMP whose info header is rewritten to declare width x height."""
    data = bytearray(small_image(".bmp"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A small lossy WebP whose VP8 frame header is rewritten to declare width x height (14 bits: up to 16383)."""
    data = bytearray(small_image(".webp"))
    assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"
    data[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    return bytes(data)


def pgm_declaring(width: int, height: int) -> bytes:
    """A binary PGM header (a format OpenCV decodes but the appliance does not accept) with one row of pixels."""
    return f"P5\n{width} {height}\n255\n".encode() + bytes(width)


DECLARING = {
    "jpg": jpeg_declaring,
    "png": lambda w, h: png_declaring(w, h, complete=False),
    "bmp": bmp_declaring,
    "webp": webp_declaring,
    "tif": lambda w, h: tiff_declaring(w, h, complete=False),
}


def half_jpeg_with_end_marker() -> bytes:
    """The first half of a JPEG followed by an end-of-image marker: libjpeg decodes it to grey with a warning."""
    data = small_image(".jpg", 120, 90)
    return data[: len(data) // 2] + b"\xff\xd9"


def yaml_alias_bomb(depth: int = 8, width: int = 10) -> str:
    """A data.yaml whose `names` nests aliases `depth` levels deep: a few KB that expand to width**depth strings."""
    lines = ['a0: &a0 ["' + "x" * 64 + '"]']
    for level in range(1, depth + 1):
        refs = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines += ["train: images/train", "val: images/train", f"names: [*a{depth}]", "nc: 1"]
    return "\n".join(lines) + "\n"


def yolo_zip_with(data_yaml: str, images: int = 2) -> bytes:
    """A YOLO zip (data.yaml, images/train, labels/train) whose data.yaml is the given text."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.yaml", data_yaml)
        for i in range(images):
            zf.writestr(f"images/train/img{i}.jpg", small_image(".jpg", seed=i))
            zf.writestr(f"labels/train/img{i}.txt", "0 0.5 0.5 0.2 0.2\n")
    return buf.getvalue()


def zeros_member(tar: tarfile.TarFile, name: str, size: int) -> None:
    """Add a member of `size` zero bytes to a tar (streamed: never held in memory)."""

    class Zeros(io.RawIOBase):
        def __init__(self, left: int) -> None:
            self.left = left

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    info = tarfile.TarInfo(name)
    info.size = size
    tar.addfile(info, io.BufferedReader(Zeros(size)))


def json_bytes(value: object) -> bytes:
    """Compact JSON, as a manifest file."""
    return json.dumps(value).encode()

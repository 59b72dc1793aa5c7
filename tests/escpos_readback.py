"""Read ESC/POS bytes back: raster images (GS v 0) stacked into one picture, native QR data.

A small independent decoder of the printer language, used so that zbar can check what a real
printer would put on paper.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GS_V0 = b"\x1dv0"
GS_QR_STORE = b"\x1d(k"


def raster_images(data: bytes) -> list[Image.Image]:
    images = []
    at = data.find(GS_V0)
    while at != -1:
        header = data[at + 4 : at + 8]
        width_bytes = header[0] | header[1] << 8
        rows = header[2] | header[3] << 8
        start = at + 8
        body = np.frombuffer(data[start : start + width_bytes * rows], np.uint8)
        bits = np.unpackbits(body.reshape(rows, width_bytes), axis=1)
        images.append(Image.fromarray(((1 - bits) * 255).astype(np.uint8), "L"))
        at = data.find(GS_V0, start + width_bytes * rows)
    return images


def paper(data: bytes, margin: int = 16) -> Image.Image:
    """All raster blocks one under the other, as they come out of the printer."""
    images = raster_images(data)
    width = max(i.width for i in images) + 2 * margin
    height = sum(i.height for i in images) + 2 * margin
    sheet = Image.new("L", (width, height), 255)
    y = margin
    for image in images:
        sheet.paste(image, (margin, y))
        y += image.height
    return sheet


def native_qr_payloads(data: bytes) -> list[str]:
    """Data stored with GS ( k cn=49 fn=80 (store QR symbol data)."""
    payloads = []
    at = data.find(GS_QR_STORE)
    while at != -1:
        length = data[at + 3] | data[at + 4] << 8
        cn, fn = data[at + 5], data[at + 6]
        if cn == 49 and fn == 80:
            payloads.append(data[at + 8 : at + 5 + length].decode("utf-8"))
        at = data.find(GS_QR_STORE, at + 5 + length)
    return payloads

"""Quadrilateral geometry shared by the card finder and the page finder: each side refit to
the outline it was cut from, and the corners where fitted sides meet."""

from __future__ import annotations

import cv2
import numpy as np

Line = tuple[np.ndarray, np.ndarray]  # a point on the line and its unit direction


def intersect_sides(lines: list[Line]) -> np.ndarray | None:
    """Corner i where side i-1 meets side i; None when two neighbouring sides are parallel."""
    corners = []
    for i in range(4):
        (p, u), (q, v) = lines[i - 1], lines[i]
        det = u[0] * -v[1] + v[0] * u[1]
        if abs(det) < 1e-6:
            return None
        s = ((q - p)[0] * -v[1] + v[0] * (q - p)[1]) / det
        corners.append(p + s * u)
    return np.array(corners, np.float32)


def refit_sides(
    quad: np.ndarray,
    points: np.ndarray,
    *,
    span: tuple[float, float],
    band_px: float,
    band_frac: float,
    min_side: float,
    max_shift_frac: float,
) -> np.ndarray:
    """Each side of `quad` refit (Huber) to the outline `points` along the middle `span` of it
    (away from rounded or torn corners) and within max(band_px, band_frac * side) of it; a side
    with too few points stays. The fitted corners are kept unless one moved further than
    max_shift_frac of the quad's size (the fit went somewhere odd)."""
    lines: list[Line] = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        side = b - a
        length = float(np.hypot(*side))
        if length < min_side:
            return quad
        normal = np.array([-side[1], side[0]]) / length
        t = (points - a) @ side / length**2
        d = np.abs((points - a) @ normal)
        near = points[(t > span[0]) & (t < span[1]) & (d < max(band_px, band_frac * length))]
        if len(near) < 10:
            lines.append((a, side / length))
            continue
        vx, vy, x0, y0 = cv2.fitLine(near, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0]), np.array([vx, vy])))
    refined = intersect_sides(lines)
    if (
        refined is None
        or np.abs(refined - quad).max() > max_shift_frac * np.ptp(quad, axis=0).max()
    ):
        return quad
    return refined

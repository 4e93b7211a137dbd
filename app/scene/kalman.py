"""Motion: where each tracked box will be in the next frame, by a constant-velocity Kalman filter.

The filter is SORT's and ByteTrack's (DeepSORT's noise: proportional to the box's height, so a near object may move
more pixels than a far one), on the box's centre x, centre y, width and height, each with its velocity. Its
matrices pair each coordinate with its own velocity only, so the 8-dimensional filter is exactly four independent
2-dimensional ones; they are kept as arrays of means, velocities and the three covariance terms, and every track
is predicted and updated at once with element-wise numpy (no 8x8 matrix per track, no filterpy).

A state is a (5, 4) array: rows MEAN, VELOCITY, VAR (the coordinate's variance), COV (coordinate x velocity),
VAR_VELOCITY; columns centre x, centre y, width, height. The functions take and return (N, 5, 4) stacks.
"""

from __future__ import annotations

import numpy as np

MEAN, VELOCITY, VAR, COV, VAR_VELOCITY = range(5)
#: standard deviations as fractions of the box's height, per frame: of a measured coordinate, of its velocity
POSITION_NOISE = 1 / 20
VELOCITY_NOISE = 1 / 160


def initiate(boxes: np.ndarray) -> np.ndarray:
    """New states for (N, 4) boxes x0, y0, x1, y1: at the box, not moving, the velocity unknown."""
    states = np.zeros((len(boxes), 5, 4))
    states[:, MEAN] = _centre_size(boxes)
    height = states[:, MEAN, 3:4]
    states[:, VAR] = (2 * POSITION_NOISE * height) ** 2
    states[:, VAR_VELOCITY] = (10 * VELOCITY_NOISE * height) ** 2
    return states


def predict(states: np.ndarray) -> np.ndarray:
    """The states one frame later."""
    out = states.copy()
    height = states[:, MEAN, 3:4]
    out[:, MEAN] += states[:, VELOCITY]
    out[:, VAR] += 2 * states[:, COV] + states[:, VAR_VELOCITY] + (POSITION_NOISE * height) ** 2
    out[:, COV] += states[:, VAR_VELOCITY]
    out[:, VAR_VELOCITY] += (VELOCITY_NOISE * height) ** 2
    return out


def update(states: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The states corrected by the boxes measured for them (one box per state)."""
    out = states.copy()
    innovation = _centre_size(boxes) - states[:, MEAN]
    residual_var = states[:, VAR] + (POSITION_NOISE * states[:, MEAN, 3:4]) ** 2
    gain_position, gain_velocity = states[:, VAR] / residual_var, states[:, COV] / residual_var
    out[:, MEAN] += gain_position * innovation
    out[:, VELOCITY] += gain_velocity * innovation
    out[:, VAR] = (1 - gain_position) * states[:, VAR]
    out[:, COV] = (1 - gain_position) * states[:, COV]
    out[:, VAR_VELOCITY] = states[:, VAR_VELOCITY] - gain_velocity * states[:, COV]
    return out


def boxes_of(states: np.ndarray) -> np.ndarray:
    """The states' boxes, (N, 4) x0, y0, x1, y1."""
    centre, size = states[:, MEAN, :2], np.maximum(states[:, MEAN, 2:], 0.0)
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def box_of(state: np.ndarray) -> tuple[float, float, float, float]:
    """One (5, 4) state's box, x0, y0, x1, y1."""
    x, y, w, h = (float(v) for v in state[MEAN])
    w, h = max(w, 0.0), max(h, 0.0)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _centre_size(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1)

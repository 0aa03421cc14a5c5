"""Normalizations shared by the training features."""

from __future__ import annotations

import numpy as np


def robust_scale_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(value - group median) / group interquartile range, per group.

    Medians and quartiles are not dragged by the outliers that prices have
    (a £0.01 sample, a £4,000 sofa); a group whose IQR is 0 is only centred.
    """
    scaled = np.zeros(len(values), dtype=np.float64)
    for group in np.unique(groups):
        members = groups == group
        q1, median, q3 = np.percentile(values[members], [25, 50, 75])
        spread = q3 - q1
        scaled[members] = (values[members] - median) / (spread if spread > 0 else 1.0)
    return scaled

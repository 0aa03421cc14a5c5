import numpy as np
import pytest

from ml.normalize import robust_scale_by_group


def test_prices_are_scaled_by_their_own_category_median_and_iqr() -> None:
    prices = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1000.0, 10.0, 10.0])
    groups = np.array(["mugs"] * 6 + ["tins"] * 2)
    scaled = robust_scale_by_group(prices, groups)
    # mugs: median 3.5, quartiles 2.25 and 4.75 (IQR 2.5); the 1000 outlier does not move them.
    assert scaled[0] == pytest.approx((1 - 3.5) / 2.5)
    assert scaled[3] == pytest.approx((4 - 3.5) / 2.5)
    # tins: IQR 0, only centred.
    assert list(scaled[6:]) == [0.0, 0.0]

"""What a store offers retention: the bounds of a UTC day as the stores keep times."""

from __future__ import annotations

from datetime import date

import pytest

from search.retention import day_bounds_us

DAY_US = 86_400_000_000


@pytest.mark.parametrize(
    ("day", "start_us"),
    [
        (date(1970, 1, 1), 0),
        (date(1970, 1, 2), DAY_US),
        (date(2026, 11, 27), 1_795_737_600_000_000),  # 2026-11-27T00:00:00Z
        (date(2028, 2, 29), 1_835_395_200_000_000),  # a leap day
    ],
)
def test_a_day_is_its_utc_midnight_to_the_next(day: date, start_us: int) -> None:
    assert day_bounds_us(day) == (start_us, start_us + DAY_US)

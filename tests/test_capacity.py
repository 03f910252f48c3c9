"""Capacity maths against hand-computed examples."""

from dcops.inventory.capacity import ResourceUsage, capacity, fits


def test_capacity_is_total_minus_reserved_times_ratio():
    # (128 - 8) x 4.0 = 480 vCPU
    assert capacity(128, 8, 4.0) == 480
    # (1024 - 64) x 1.5 = 1440 GiB
    assert capacity(1024, 64, 1.5) == 1440
    assert capacity(10, 10, 2.0) == 0


def test_fits_accepts_an_exact_fit_despite_float_noise():
    # (10 - 0) x 1.1 = 11.000000000000002 in floating point
    assert fits(10, 0, 1.1, 11)
    assert not fits(10, 0, 1.1, 12)
    assert fits(100, 20, 1.0, 80)
    assert not fits(100, 20, 1.0, 81)


def test_resource_usage_free_and_ratio():
    usage = ResourceUsage("c1", "s1", "vcpu", total=64, reserved=4, allocation_ratio=2.0, allocated=30)
    assert usage.capacity == 120
    assert usage.free == 90
    assert usage.used_ratio == 0.25
    empty = ResourceUsage("c1", "s1", "vcpu", total=4, reserved=4, allocation_ratio=2.0, allocated=0)
    assert empty.used_ratio is None
    assert empty.as_dict()["free"] == 0

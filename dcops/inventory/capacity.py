"""Capacity maths (pure): what a cluster can hold, what is allocated, what is free."""

from __future__ import annotations

from dataclasses import dataclass

# Float noise from allocation ratios like 1.1 must not turn an exact fit into a refusal.
EPSILON = 1e-9


def capacity(total: int, reserved: int, allocation_ratio: float) -> float:
    """Placement's capacity: (total - reserved) * allocation_ratio."""
    return (total - reserved) * allocation_ratio


def fits(total: int, reserved: int, allocation_ratio: float, allocated: float) -> bool:
    """True when `allocated` is within the capacity of one cluster resource."""
    return allocated <= capacity(total, reserved, allocation_ratio) + EPSILON


@dataclass(frozen=True)
class ResourceUsage:
    """One resource of one cluster: its capacity, what is allocated and what is free."""

    cluster: str
    site: str
    resource: str
    total: int
    reserved: int
    allocation_ratio: float
    allocated: int

    @property
    def capacity(self) -> float:
        return capacity(self.total, self.reserved, self.allocation_ratio)

    @property
    def free(self) -> float:
        return self.capacity - self.allocated

    @property
    def used_ratio(self) -> float | None:
        """allocated / capacity, 0-1 (above 1 when overcommitted); None when capacity is 0."""
        return self.allocated / self.capacity if self.capacity > 0 else None

    def as_dict(self) -> dict:
        return {
            "cluster": self.cluster,
            "site": self.site,
            "resource": self.resource,
            "total": self.total,
            "reserved": self.reserved,
            "allocation_ratio": self.allocation_ratio,
            "capacity": self.capacity,
            "allocated": self.allocated,
            "free": self.free,
            "used_ratio": self.used_ratio,
        }

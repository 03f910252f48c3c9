"""Capacity maths (pure): what a cluster can hold, what is allocated, what is free, where a plan fits."""

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


def shortfalls(needed: dict[str, int], usage: dict[str, ResourceUsage]) -> list[str]:
    """What does not fit on one cluster, per resource: 'vcpu short by 4 (free 2, needs 6)'."""
    problems = []
    for resource, amount in needed.items():
        row = usage.get(resource)
        if row is None:
            problems.append(f"no {resource} capacity")
        elif not fits(row.total, row.reserved, row.allocation_ratio, row.allocated + amount):
            problems.append(f"{resource} short by {amount - row.free:g} (free {row.free:g}, needs {amount})")
    return problems


def choose_cluster(
    needed: dict[str, int], candidates: dict[str, dict[str, ResourceUsage]]
) -> tuple[str | None, dict[str, list[str]]]:
    """The fitting cluster left least full by the placement (spreads load); else every shortfall.

    Pure: `candidates` maps cluster name to its usage per resource.
    """
    fitting, refusals = [], {}
    for name, usage in sorted(candidates.items()):
        problems = shortfalls(needed, usage)
        if problems:
            refusals[name] = problems
            continue
        fullest = max(
            ((usage[r].allocated + amount) / usage[r].capacity for r, amount in needed.items() if usage[r].capacity),
            default=0.0,
        )
        fitting.append((fullest, name))
    return (min(fitting)[1] if fitting else None), refusals

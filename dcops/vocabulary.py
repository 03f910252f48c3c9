"""The fixed words of the domain: resources, lifecycle states, classifications, name rules."""

from __future__ import annotations

import re

RESOURCES = ("vcpu", "ram_gib", "storage_gib")

PROGRAMME_STATUSES = (
    "requested",
    "approved",
    "provisioning",
    "active",
    "failed",
    "decommissioning",
    "retired",
)
# A programme in one of these statuses is in service: probed, and reported as not monitored
# when it has no check. The others are not built yet, or gone.
IN_SERVICE_STATUSES = ("active", "decommissioning")
# The Prometheus job that scrapes blackbox_exporter for dcops' checks: `dcops metrics
# scrape-config` names it, `dcops probe sync` reads probe_success of it.
BLACKBOX_JOB = "dcops-blackbox"
# Where blackbox_exporter listens, and where Prometheus finds the targets file, unless told otherwise.
DEFAULT_BLACKBOX = "127.0.0.1:9115"
DEFAULT_TARGETS_FILE = "/etc/prometheus/file_sd/dcops.json"
CLASSIFICATIONS = ("public", "internal", "confidential", "secret")
ENVIRONMENTS = ("production", "staging")
ENDPOINT_KINDS = ("http", "tcp", "tls")
SITE_ROLES = ("primary", "disaster-recovery")
BACKUP_TIERS = ("none", "daily", "hourly", "continuous")

# Names that become host names, file names or Ansible variables.
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$"
# A DNS host name: labels of letters, digits and inner dashes, 253 characters at most.
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                         r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_NAME_RE = re.compile(NAME_PATTERN)
_SLUG_RE = re.compile(SLUG_PATTERN)

# Bounds past which a number is a typo, not a data centre.
MAX_RESOURCE_AMOUNT = {"vcpu": 1_000_000, "ram_gib": 100_000_000, "storage_gib": 10_000_000_000}
MAX_ALLOCATION_RATIO = 100.0


def is_slug(value: str) -> bool:
    """True for a programme slug: [a-z0-9-], 2 to 63 characters, no leading or trailing dash."""
    return bool(_SLUG_RE.match(value))


def is_name(value: str) -> bool:
    """True for a host, ministry, site or cluster name: [a-z0-9-], 1 to 63 characters."""
    return bool(_NAME_RE.match(value))

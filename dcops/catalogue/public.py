"""What the published catalogue site reads: site_data, the data centre's sites and the tiers' rules."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.catalogue.queries import site_data


def public_sites(conn: Connection) -> list[dict]:
    """The data centre's sites as the public site explains their codes: code, name, role, location.

    Primary sites first, then by code.
    """
    rows = conn.execute(text("SELECT code, name, role, location FROM site "
                             "ORDER BY CASE role WHEN 'primary' THEN 0 ELSE 1 END, code"))
    return [{"code": r[0], "name": r[1], "role": r[2], "location": r[3] or ""} for r in rows]


def public_tiers(conn: Connection) -> list[dict]:
    """The SLA tiers with whether each leaves third parties' outages out of its SLA (excludes_external)."""
    rows = conn.execute(text("SELECT tier, name, sla_target_percent, excludes_external FROM sla_tier ORDER BY tier"))
    return [{"tier": r[0], "name": r[1], "sla_target_percent": r[2], "excludes_external": bool(r[3])} for r in rows]


def public_site_data(conn: Connection) -> dict:
    """Everything `dcops catalogue publish` shows: site_data, with the sites and each tier's external rule."""
    return {**site_data(conn), "tiers": public_tiers(conn), "sites": public_sites(conn)}

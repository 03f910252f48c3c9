"""The tables of dcops (SQLModel): ministries, programmes, sites, clusters, capacity, allocations, hosts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Table,
                        UniqueConstraint, false, text)
from sqlmodel import Field, SQLModel

from dcops.db import EpochMicroseconds, UTCDateTime, utcnow


class SlaTier(SQLModel, table=True):
    """A service tier and its availability target; operators may change the target."""

    __tablename__ = "sla_tier"

    tier: int = Field(primary_key=True)
    name: str
    sla_target_percent: float
    # Whether downtime caused by a dependency run outside the data centre (by a third party) is
    # left out of this tier's SLA, like a ticket clock paused while waiting on a vendor.
    excludes_external: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class Ministry(SQLModel, table=True):
    """A ministry (tenant) whose programmes the data centre hosts."""

    __tablename__ = "ministry"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True)
    name: str
    contact: str = ""


class Site(SQLModel, table=True):
    """A data-centre site: the primary one, a disaster-recovery one."""

    __tablename__ = "site"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True)
    name: str
    role: str  # primary | disaster-recovery
    location: str = ""


class Cluster(SQLModel, table=True):
    """A capacity pool at a site; its capacity rows say how much it can hold."""

    __tablename__ = "cluster"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    site_id: int = Field(foreign_key="site.id")
    description: str = ""


class ClusterCapacity(SQLModel, table=True):
    """Placement-style inventory of one resource on one cluster.

    capacity = (total - reserved) * allocation_ratio; usage is the sum of allocations.
    """

    __tablename__ = "cluster_capacity"
    __table_args__ = (
        CheckConstraint("total >= 0", name="ck_capacity_total"),
        CheckConstraint("reserved >= 0 AND reserved <= total", name="ck_capacity_reserved"),
        CheckConstraint("allocation_ratio > 0", name="ck_capacity_ratio"),
    )

    cluster_id: int = Field(foreign_key="cluster.id", primary_key=True)
    resource: str = Field(primary_key=True)  # vcpu | ram_gib | storage_gib
    total: int
    reserved: int = 0
    allocation_ratio: float = 1.0
    largest_host: int | None = None  # the largest physical host's amount (N+1 reserve), when known


class Programme(SQLModel, table=True):
    """A hosted government programme (a tenant's service) and its hosting terms."""

    __tablename__ = "programme"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True)
    name: str
    ministry_id: int = Field(foreign_key="ministry.id", index=True)
    description: str = ""
    tier: int = Field(foreign_key="sla_tier.tier")
    status: str = "active"
    classification: str = "internal"
    environment: str = "production"
    owner_contact: str = ""
    security_contact: str = ""
    personal_data: bool = False
    plan_id: str | None = Field(default=None, foreign_key="plan.id")  # the catalogue plan that prices it
    rto_minutes: int | None = None
    rpo_minutes: int | None = None
    backup_tier: str = "daily"
    review_date: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    # Its service span, which bounds what a report counts: first active (set once), and retired.
    activated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    retired_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    short_name: str | None = None  # what charts and the status page call it: e-CRVS, LESMIS, DHIS2
    # Its own word on whether external dependency time is left out of its SLA (None: its tier's).
    excludes_external: bool | None = None


class ProgrammeDependency(SQLModel, table=True):
    """Programme `programme_id` needs `depends_on_id` to work (a wallet needs digital ID)."""

    __tablename__ = "programme_dependency"
    __table_args__ = (CheckConstraint("programme_id <> depends_on_id", name="ck_dependency_self"),)

    programme_id: int = Field(foreign_key="programme.id", primary_key=True)
    depends_on_id: int = Field(foreign_key="programme.id", primary_key=True)


class Endpoint(SQLModel, table=True):
    """A health endpoint of a programme: a URL (http) or host:port (tcp, tls)."""

    __tablename__ = "endpoint"
    __table_args__ = (UniqueConstraint("programme_id", "name", name="uq_endpoint_programme_name"),)

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int = Field(foreign_key="programme.id", index=True)
    name: str
    kind: str  # http | tcp | tls
    target: str
    expect_status: str = Field(default="200-399", sa_column_kwargs={"server_default": "200-399"})
    body_contains: str = Field(default="", sa_column_kwargs={"server_default": ""})
    timeout_seconds: float = Field(default=5.0, sa_column_kwargs={"server_default": "5.0"})
    interval_seconds: int = Field(default=60, sa_column_kwargs={"server_default": "60"})


class Allocation(SQLModel, table=True):
    """An amount of one resource on one cluster held by a programme."""

    __tablename__ = "allocation"
    __table_args__ = (
        ForeignKeyConstraint(
            ["cluster_id", "resource"],
            ["cluster_capacity.cluster_id", "cluster_capacity.resource"],
            name="fk_allocation_capacity",
        ),
        CheckConstraint("amount >= 0", name="ck_allocation_amount"),
    )

    programme_id: int = Field(foreign_key="programme.id", primary_key=True)
    cluster_id: int = Field(primary_key=True, index=True)
    resource: str = Field(primary_key=True)
    amount: int


class Host(SQLModel, table=True):
    """A VM or server of a programme, on a cluster; enough to build an Ansible inventory."""

    __tablename__ = "host"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    address: str
    cluster_id: int = Field(foreign_key="cluster.id")
    programme_id: int = Field(foreign_key="programme.id", index=True)
    role: str = "app"


class Offering(SQLModel, table=True):
    """A service in the published catalogue (Open Service Broker 'service offering')."""

    __tablename__ = "offering"

    id: str = Field(primary_key=True)
    name: str
    description: str = ""
    display_name: str = ""
    long_description: str = ""
    tags: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The checks each programme of the offering gets at approval (targets with placeholders).
    checks: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    public_domain: str = Field(default="", sa_column_kwargs={"server_default": ""})


class Plan(SQLModel, table=True):
    """A plan of an offering: resources per instance, instances, tiers it carries, monthly cost."""

    __tablename__ = "plan"
    __table_args__ = (
        CheckConstraint("instances >= 1", name="ck_plan_instances"),
        CheckConstraint("monthly_cost_lak >= 0", name="ck_plan_cost"),
    )

    id: str = Field(primary_key=True)
    offering_id: str = Field(foreign_key="offering.id", index=True)
    name: str
    description: str = ""
    display_name: str = ""
    bullets: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    monthly_cost_lak: int = 0
    vcpu: int = 0
    ram_gib: int = 0
    storage_gib: int = 0
    instances: int = 1
    sla_tiers: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class HostingRequest(SQLModel, table=True):
    """A ministry's request to host a programme on a catalogue plan, and its decision trail."""

    __tablename__ = "hosting_request"

    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(default="submitted", index=True)
    ministry_id: int = Field(foreign_key="ministry.id", index=True)
    programme_slug: str = Field(index=True)
    programme_name: str
    description: str = ""
    plan_id: str = Field(foreign_key="plan.id")
    tier: int = Field(foreign_key="sla_tier.tier")
    classification: str
    environment: str = "production"
    personal_data: bool = False
    justification: str
    owner_contact: str
    security_contact: str
    wanted_by: date | None = None
    site: str | None = None
    submitted_by: str
    submitted_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    security_signoff_by: str | None = None
    security_signoff_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    reason: str = ""
    cluster_id: int | None = Field(default=None, foreign_key="cluster.id")
    programme_id: int | None = Field(default=None, foreign_key="programme.id")
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class AuditEntry(SQLModel, table=True):
    """One appended record of a change; `hash` chains it to the entry before it."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    actor: str
    action: str
    object_type: str
    object_key: str = Field(index=True)
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    prev_hash: str
    hash: str = Field(unique=True, index=True)


class Job(SQLModel, table=True):
    """One Ansible run: what it ran on which programmes, how it ended, per-host results.

    A job row is written `running` before Ansible starts and always gets a terminal
    status: successful, failed, timeout, cancelled, or interrupted (its process died).
    """

    __tablename__ = "job"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # provision | decommission | verify
    playbook: str
    programmes: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    check_mode: bool = False
    sandbox: bool = False
    status: str = Field(default="running", index=True)
    rc: int | None = None
    actor: str
    started_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    hostname: str
    pid: int
    pid_start: str = ""
    private_data_dir: str
    host_stats: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    failed_host: str | None = None
    failed_task: str | None = None
    failure_message: str | None = None


class CheckState(SQLModel, table=True):
    """The damped state of one check (endpoint) and what damping remembers."""

    __tablename__ = "check_state"

    endpoint_id: int = Field(foreign_key="endpoint.id", primary_key=True)
    state: str = "unknown"
    since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    fail_streak: int = 0
    ok_streak: int = 0
    last_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_success: bool | None = None
    last_duration_seconds: float | None = None
    last_reason: str = ""
    tls_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class StateInterval(SQLModel, table=True):
    """A stretch of time in one state: of a check, or of its programme (endpoint_id null)."""

    __tablename__ = "state_interval"
    __table_args__ = (
        # A period's spans of a programme, found and read from the index alone (reports, the portal).
        Index("ix_state_interval_programme_span", "programme_id", "started_at", "endpoint_id", "ended_at"),
        # The open span of each programme and check: what "state now" reads.
        Index("ix_state_interval_open", "programme_id", "endpoint_id",
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int = Field(foreign_key="programme.id")
    endpoint_id: int | None = Field(default=None, foreign_key="endpoint.id", index=True)
    state: str
    started_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    reason: str = ""


class LatencyRollup(SQLModel, table=True):
    """Probe latency of one check over one hour (or one day, once compacted)."""

    __tablename__ = "latency_rollup"
    # Clustered on its key (SQLite): one b-tree instead of a table plus its key's index.
    __table_args__ = {"sqlite_with_rowid": False}

    endpoint_id: int = Field(foreign_key="endpoint.id", primary_key=True)
    period_start: datetime = Field(sa_column=Column(EpochMicroseconds, primary_key=True))
    period: str = "hour"  # hour | day
    count: int = 0
    failures: int = 0
    sum_seconds: float = 0.0
    min_seconds: float | None = None
    max_seconds: float | None = None
    le_0_1: int = 0
    le_0_5: int = 0
    le_1: int = 0
    le_5: int = 0


class ProbeResult(SQLModel, table=True):
    """A raw probe result, kept for a short window only (default 48 h).

    Keyed and clustered (SQLite) by time, then check: rows arrive in time order and leave
    by age, so one b-tree serves both and pages fill up; a check probed twice in the same
    microsecond is one result.
    """

    __tablename__ = "probe_result"
    __table_args__ = {"sqlite_with_rowid": False}

    at: datetime = Field(sa_column=Column(EpochMicroseconds, primary_key=True))
    endpoint_id: int = Field(foreign_key="endpoint.id", primary_key=True)
    success: bool
    duration_seconds: float
    reason: str = ""


class MaintenanceWindow(SQLModel, table=True):
    """Planned work on a programme or on a whole cluster, recorded ahead (or, flagged, after)."""

    __tablename__ = "maintenance_window"
    __table_args__ = (
        CheckConstraint("(programme_id IS NULL) <> (cluster_id IS NULL)", name="ck_maintenance_target"),
        CheckConstraint("ends_at > starts_at", name="ck_maintenance_order"),
    )

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int | None = Field(default=None, foreign_key="programme.id", index=True)
    cluster_id: int | None = Field(default=None, foreign_key="cluster.id", index=True)
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    reason: str
    change_ref: str
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    recorded_by: str
    cancelled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    cancelled_by: str | None = None


class CapacitySnapshot(SQLModel, table=True):
    """What one cluster resource held on one day (local date): the history run-out forecasts fit."""

    __tablename__ = "capacity_snapshot"
    __table_args__ = {"sqlite_with_rowid": False}

    cluster_id: int = Field(foreign_key="cluster.id", primary_key=True)
    resource: str = Field(primary_key=True)
    taken_on: date = Field(primary_key=True)
    total: int
    reserved: int
    allocation_ratio: float
    allocated: int
    taken_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class FrozenReport(SQLModel, table=True):
    """A report as issued: its document (figures) and the digest of the inputs it was computed from."""

    __tablename__ = "frozen_report"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # uptime | capacity
    period: str = Field(index=True)  # e.g. 2026-10, or 2026-10-01..2026-10-15
    scope: str = ""  # e.g. "ministry=moh" ("" for the whole data centre)
    frozen_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    frozen_by: str
    inputs_digest: str
    document: str  # canonical JSON, byte for byte what re-issues render from



# The portal's tables and the outbox, as SQLAlchemy Core tables on the same metadata: their rows are
# only ever read and written through Core, and a SQLModel class costs about 8 ms of every command's
# start-up (the request commands import this module) where a Core table costs a fraction of one.

portal_user_table = Table(
    "portal_user", SQLModel.metadata,
    # A person who signs in to the portal: a local account (Argon2 hash) or one known through OpenID Connect.
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False),  # the sign-in name, lower case; also the audit actor
    Column("display_name", String, nullable=False, default=""),
    Column("email", String, nullable=False, default=""),
    Column("source", String, nullable=False, default="local"),  # local | oidc
    Column("password_hash", String, nullable=True),  # local accounts only
    Column("oidc_issuer", String, nullable=True),
    Column("oidc_subject", String, nullable=True),
    Column("language", String, nullable=False, default="en"),  # en | lo: the portal's language, remembered
    Column("disabled_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_portal_user_oidc"),
    Index("ix_portal_user_name", "name", unique=True),
)

portal_grant_table = Table(
    "portal_grant", SQLModel.metadata,
    # One role a person holds: in one ministry (viewer, requester) or data-centre wide (operator,
    # security-officer, auditor: ministry_id is null).
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("portal_user.id"), nullable=False),
    Column("role", String, nullable=False),
    Column("ministry_id", Integer, ForeignKey("ministry.id"), nullable=True),
    UniqueConstraint("user_id", "role", "ministry_id", name="uq_portal_grant"),
    Index("ix_portal_grant_user_id", "user_id"),
)

portal_session_table = Table(
    "portal_session", SQLModel.metadata,
    # A signed-in browser: the cookie holds an opaque token, the table only its SHA-256.
    Column("token_hash", String, primary_key=True),
    Column("user_id", Integer, ForeignKey("portal_user.id"), nullable=False),
    Column("csrf_token", String, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # the absolute timeout
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("client", String, nullable=False, default=""),  # the address it signed in from, for the audit trail
    Index("ix_portal_session_user_id", "user_id"),
)

api_token_table = Table(
    "api_token", SQLModel.metadata,
    # A bearer token for a person's scripts: stored as its SHA-256, acting with that person's roles.
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("portal_user.id"), nullable=False),
    Column("token_hash", String, nullable=False),
    Column("prefix", String, nullable=False),  # the token's first characters, to tell tokens apart
    Column("label", String, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("ix_api_token_token_hash", "token_hash", unique=True),
    Index("ix_api_token_user_id", "user_id"),
)

signin_failure_table = Table(
    "signin_failure", SQLModel.metadata,
    # A failed sign-in, counted over a window to limit guessing by name and by client address.
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("name", String, nullable=False),
    Column("client", String, nullable=False),
    Index("ix_signin_failure_at", "at"),
    Index("ix_signin_failure_name", "name"),
    Index("ix_signin_failure_client", "client"),
)

outbox_message_table = Table(
    "outbox_message", SQLModel.metadata,
    # A notification written in the transaction of the change it tells of; `dcops serve` sends it.
    Column("id", Integer, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("channel", String, nullable=False, default="email"),
    Column("event", String, nullable=False),  # e.g. request.approved, request.needs-signoff
    Column("object_type", String, nullable=False),
    Column("object_key", String, nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("subject", String, nullable=False),
    Column("body", String, nullable=False),
    Column("status", String, nullable=False, default="pending"),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("last_error", String, nullable=False, default=""),
    Index("ix_outbox_message_status", "status"),
    Index("ix_outbox_message_next_attempt_at", "next_attempt_at"),
)


external_component_table = Table(
    "external_component", SQLModel.metadata,
    # Something programmes depend on that dcops does not host: the national ID service run by
    # another ministry, a bank's switch, the grid's power, the upstream link.
    Column("id", Integer, primary_key=True),
    Column("slug", String, nullable=False),
    Column("name", String, nullable=False),
    Column("description", String, nullable=False, default=""),
    # third-party: run outside the data centre (a tier may exclude its time from the SLA);
    # data-centre: the data centre's own (its power plant, its uplink), never excluded.
    Column("run_by", String, nullable=False, default="third-party"),
    Column("contact", String, nullable=False, default=""),
    Index("ix_external_component_slug", "slug", unique=True),
)

programme_external_dependency_table = Table(
    "programme_external_dependency", SQLModel.metadata,
    # Programme `programme_id` needs external component `component_id` to work.
    Column("programme_id", Integer, ForeignKey("programme.id"), primary_key=True),
    Column("component_id", Integer, ForeignKey("external_component.id"), primary_key=True),
)

external_outage_table = Table(
    "external_outage", SQLModel.metadata,
    # A stretch of time an external component was down, as an operator recorded it (its owner's
    # notice, a phone call): what attribution sets a programme's downtime against.
    Column("id", Integer, primary_key=True),
    Column("component_id", Integer, ForeignKey("external_component.id"), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),  # null: still down
    Column("note", String, nullable=False, default=""),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("recorded_by", String, nullable=False),
    Column("cancelled_at", UTCDateTime, nullable=True),
    CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="ck_external_outage_order"),
    Index("ix_external_outage_component_started", "component_id", "started_at"),
)

incident_table = Table(
    "incident", SQLModel.metadata,
    # A stretch of a programme's downtime, with a stable number, and what operators know of it.
    # Its times follow the programme-level history (dcops.incidents.sync); the rest is annotation.
    Column("id", Integer, primary_key=True),  # the incident's number
    Column("programme_id", Integer, ForeignKey("programme.id"), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),  # null: still down
    Column("status", String, nullable=False, default="new"),  # dcops.lifecycle.INCIDENT_TRANSITIONS
    Column("reason", String, nullable=False, default=""),  # the probe's first words on it
    Column("title", String, nullable=False, default=""),
    Column("cause", String, nullable=False, default=""),
    Column("action", String, nullable=False, default=""),
    # data-centre | ministry-application | external:SLUG | dependency:SLUG; null: as computed
    Column("attributed_to", String, nullable=True),
    Column("postmortem_url", String, nullable=True),
    Column("released", Boolean, nullable=False, default=False),  # shown on the public status page
    Column("merged_into", Integer, ForeignKey("incident.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("programme_id", "started_at", name="uq_incident_programme_start"),
    Index("ix_incident_started_at", "started_at"),
)

incident_update_table = Table(
    "incident_update", SQLModel.metadata,
    # One timed update of an incident: its status then, and what was said.
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incident.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String, nullable=False),
    Column("status", String, nullable=False),
    Column("note", String, nullable=False, default=""),
    Index("ix_incident_update_incident_id", "incident_id"),
)

alertmanager_silence_table = Table(
    "alertmanager_silence", SQLModel.metadata,
    # The Alertmanager silence of one maintenance window (dcops.alertmanager): written pending in the
    # window's transaction, created in Alertmanager after it commits, expired when the window is cancelled.
    Column("id", Integer, primary_key=True),
    Column("window_id", Integer, ForeignKey("maintenance_window.id"), nullable=False),
    Column("state", String, nullable=False, default="pending"),  # dcops.lifecycle.SILENCE_TRANSITIONS
    Column("silence_id", String, nullable=True),  # Alertmanager's id, once it took the silence
    Column("matchers", JSON, nullable=True),  # what the silence selects, as sent
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),  # due (or this attempt's lease) for create/expire
    Column("last_error", String, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_alertmanager_silence_window_id", "window_id", unique=True),
    Index("ix_alertmanager_silence_state", "state"),
)

alertmanager_alert_table = Table(
    "alertmanager_alert", SQLModel.metadata,
    # A programme's alert as Alertmanager's webhook delivered it: when it fired and was sent out (to
    # which receiver), when it resolved. An incident shows the alerts that began within it.
    Column("id", Integer, primary_key=True),
    Column("programme_id", Integer, ForeignKey("programme.id"), nullable=False),
    Column("alertname", String, nullable=False),
    Column("fingerprint", String, nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=True),  # null: still firing
    Column("status", String, nullable=False),  # firing | resolved
    Column("receiver", String, nullable=False, default=""),
    Column("severity", String, nullable=False, default=""),
    Column("fired_notified_at", UTCDateTime, nullable=True),  # when the firing notification reached dcops
    Column("resolved_notified_at", UTCDateTime, nullable=True),  # when the resolved one did
    UniqueConstraint("fingerprint", "starts_at", name="uq_alertmanager_alert_fingerprint_start"),
    Index("ix_alertmanager_alert_programme_starts", "programme_id", "starts_at"),
)

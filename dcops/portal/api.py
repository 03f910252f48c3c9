"""The portal's JSON API under /api/v1: the same use-cases and the same authorisation as the pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from dcops.access import Actor
from dcops.catalogue import requests as requests_lib
from dcops.inventory import queries as inventory_queries
from dcops.portal.web import api_actor, month_in_path, number_in_path

router = APIRouter()


def _database(request: Request):
    return request.app.state.database


@router.get("/programmes", summary="The programmes you may see")
def programmes(request: Request, actor: Actor = Depends(api_actor)) -> list[dict[str, Any]]:
    with _database(request).transaction() as conn:
        return inventory_queries.list_programmes(conn, actor=actor)


@router.get("/programmes/{slug}", summary="One programme, with its checks, capacity and hosts")
def programme(request: Request, slug: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    with _database(request).transaction() as conn:
        return inventory_queries.show_programme(conn, slug, actor=actor)


@router.get("/requests", summary="The hosting requests you may see, oldest first")
def request_list(request: Request, state: str | None = None, actor: Actor = Depends(api_actor)) -> list[dict[str, Any]]:
    with _database(request).transaction() as conn:
        return requests_lib.list_requests(conn, state=state, actor=actor)


@router.get("/requests/{request_id}", summary="One hosting request with its history")
def request_one(request: Request, request_id: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    with _database(request).transaction() as conn:
        return requests_lib.show_request(conn, number_in_path(request_id), actor=actor)


@router.post("/requests", status_code=201, summary="Submit a hosting request (the document of a request file)",
             responses={422: {"description": "Every problem found in the document; nothing was stored"}})
def submit(request: Request, document: dict[str, Any] = Body(...), actor: Actor = Depends(api_actor)):
    request_id = requests_lib.submit(_database(request), document, actor=actor, where="request",
                                     tz=request.app.state.settings.tz)
    return JSONResponse({"id": request_id, "state": "submitted"}, status_code=201,
                        headers={"location": f"/api/v1/requests/{request_id}"})


@router.post("/requests/{request_id}/withdraw", summary="Withdraw a submitted request")
def withdraw(request: Request, request_id: str, body: dict[str, Any] | None = Body(None),
             actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    number = number_in_path(request_id)
    reason = str((body or {}).get("reason", ""))
    requests_lib.withdraw(_database(request), number, actor=actor, reason=reason)
    with _database(request).transaction() as conn:
        return requests_lib.show_request(conn, number, actor=actor)


@router.get("/reports/{ministry}", summary="The months a ministry has reports for, and which were issued")
def reports(request: Request, ministry: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    from dcops.db import utcnow
    from dcops.reports.ministry import report_list

    with _database(request).transaction() as conn:
        return report_list(conn, actor, ministry, tz=request.app.state.settings.tz, now=utcnow())


@router.get("/reports/{ministry}/{period}", summary="A ministry's SLA report of a month (as issued, once frozen)")
def report(request: Request, ministry: str, period: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    from dcops.db import utcnow
    from dcops.reports.ministry import uptime_report
    from dcops.reports.documents import judging

    settings = request.app.state.settings
    with _database(request).transaction() as conn:
        return uptime_report(conn, actor, ministry, month_in_path(period), tz=settings.tz, now=utcnow(),
                             data_centre_name=settings.data_centre_name, judging=judging(settings))


@router.get("/statements/{ministry}/{period}", summary="A ministry's statement of a month, in LAK")
def statement(request: Request, ministry: str, period: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    from dcops.db import utcnow
    from dcops.reports.ministry import statement as ministry_statement

    settings = request.app.state.settings
    with _database(request).transaction() as conn:
        return ministry_statement(conn, actor, ministry, month_in_path(period), tz=settings.tz, now=utcnow(),
                                  data_centre_name=settings.data_centre_name)


@router.post("/requests/{request_id}/sign-off", summary="Sign off a submitted request's security (security officer)")
def sign_off(request: Request, request_id: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    number = number_in_path(request_id)
    requests_lib.sign_off(_database(request), number, actor=actor)
    with _database(request).transaction() as conn:
        return requests_lib.show_request(conn, number, actor=actor)


@router.get("/requests/{request_id}/placement", summary="Where approval would place a request now (operator)")
def placement(request: Request, request_id: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    with _database(request).transaction() as conn:
        return requests_lib.preview_placement(conn, number_in_path(request_id), actor=actor)


@router.post("/requests/{request_id}/approve", summary="Approve a request: place it and reserve its capacity (operator)")
def approve(request: Request, request_id: str, actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    from dataclasses import asdict

    placed = requests_lib.approve(_database(request), number_in_path(request_id), actor=actor)
    return asdict(placed)


@router.post("/requests/{request_id}/reject", summary="Reject a submitted request, with the reason the ministry reads")
def reject(request: Request, request_id: str, body: dict[str, Any] = Body(...),
           actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    number = number_in_path(request_id)
    requests_lib.reject(_database(request), number, actor=actor, reason=str(body.get("reason", "")))
    with _database(request).transaction() as conn:
        return requests_lib.show_request(conn, number, actor=actor)

"""Running the portal: uvicorn over the application, one or several workers sharing the database."""

from __future__ import annotations


def app_from_env():
    """The application as each worker builds it: settings and database from the environment
    (uvicorn's factory, so several workers each open their own connections)."""
    from dcops.db import open_database
    from dcops.portal.app import create_app
    from dcops.settings import Settings

    settings = Settings.from_env()
    return create_app(settings, open_database(settings))


def serve(*, host: str, port: int, workers: int = 1, proxy_headers: bool = False,
          forwarded_allow_ips: str = "127.0.0.1") -> None:
    """Serve the portal until interrupted (uvicorn handles SIGINT and SIGTERM: a graceful stop)."""
    import uvicorn

    uvicorn.run("dcops.portal.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                proxy_headers=proxy_headers, forwarded_allow_ips=forwarded_allow_ips, server_header=False,
                access_log=False, log_level="warning")

"""`zoomq console`: a small web console for a zoomq ensemble (browse, view, edit, create, delete,
watch znodes; an ensemble page with each node's role and live throughput / latency).

It is a zoomq client like any other: one `zoomq.Client` per browser session, with the credentials
given on the command line (`--auth`) plus those the session adds through its login form, so the
ensemble's ACLs decide what each browser session may read and change.

The web app (`zoomq.console.app`) needs the `console` extra (Starlette, uvicorn); this package and
its pure helpers (`zoomq.console.core`, `zoomq.console.monitor`) import without them.
"""

from __future__ import annotations

EXTRA_HINT = "zoomq console needs the 'console' extra: pip install 'zoomq[console]' (Starlette and uvicorn)"


class MissingExtraError(ImportError):
    """Starlette or uvicorn is not installed."""


def require_extra() -> None:
    """Raise MissingExtraError (with the pip command to run) unless Starlette and uvicorn import."""
    missing = []
    for name in ("starlette", "uvicorn"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(f"{EXTRA_HINT}; missing: {', '.join(missing)}")


__all__ = ["EXTRA_HINT", "MissingExtraError", "require_extra"]

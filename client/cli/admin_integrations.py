"""`corridor admin integration`: the company's own systems that call the HTTP API — create one
(with its bot account and scopes), list them, rotate a token, revoke one."""

from __future__ import annotations

import argparse
import datetime as dt

from corridor.protocol.integrations import (
    SCOPES,
    IntegrationAdd,
    IntegrationList,
    IntegrationRevoke,
    IntegrationRotate,
)
from corridor.protocol.schema import Record

from .admin_link import Description, admin_command


def _token_text(result: Record) -> str:
    return (
        f"Token of integration {result.name} (shown once; store it in the calling system's secrets):\n{result.token}\n"
        f"Use it as: curl -H 'Authorization: Bearer {result.token}' https://SERVER:PORT/api/v1/…"
    )


def _added(request: IntegrationAdd, result: Record) -> Description:
    return {"ok": True, "name": result.name, "token": result.token, "scopes": sorted(set(request.scopes))}, _token_text(result)


def _rotated(request: IntegrationRotate, result: Record) -> Description:
    return {"ok": True, "name": result.name, "token": result.token}, _token_text(result) + "\nThe old token no longer works."


def _listed(request: IntegrationList, result: Record) -> Description:
    def line(i) -> str:
        used = dt.datetime.fromtimestamp(i.last_used).strftime("%Y-%m-%d %H:%M") if i.last_used else "never"
        allowed = ", ".join(i.allow_from) or "any address"
        return f"{i.name:<20} {','.join(i.scopes):<32} {i.rate_per_minute:>7}/min  from {allowed}; last used {used}"

    lines = [line(i) for i in result.integrations] or ["no integrations"]
    return {"ok": True, "integrations": [i.to_fields() for i in result.integrations]}, "\n".join(lines)


def _revoked(request: IntegrationRevoke, result: Record) -> Description:
    name = request.name.lower()
    return {"ok": True, "name": name}, f"Revoked integration {name}: its token is refused from now on (its bot account stays)."


def register(topics: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add the integration topic to `corridor admin`."""
    integration = topics.add_parser("integration", help="systems that call the HTTP integration API with a token")
    actions = integration.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an integration and its bot account; prints its token once")
    add.add_argument("name", metavar="NAME", help="its name, also its bot account's username (e.g. oa)")
    add.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, help="what it may do (repeatable): " + ", ".join(SCOPES)
    )
    add.add_argument(
        "--name", dest="display_name", default="", metavar="TEXT", help="how its bot shows to people (e.g. 'OA 审批')"
    )
    add.add_argument(
        "--allow-from",
        action="append",
        default=[],
        metavar="NETWORK",
        help="a source address or network it may call from, e.g. 10.1.2.3 or 10.1.0.0/16 (repeatable; default: any)",
    )
    add.add_argument("--rate", type=int, default=600, metavar="N", help="calls a minute it may make (default 600)")
    add.set_defaults(
        run=admin_command(
            lambda a: IntegrationAdd(
                name=a.name,
                scopes=tuple(a.scope),
                display_name=a.display_name,
                allow_from=tuple(a.allow_from),
                rate_per_minute=a.rate,
            ),
            _added,
        )
    )
    listing = actions.add_parser("list", help="the integrations in force, with scopes, allowlist, rate and last use")
    listing.set_defaults(run=admin_command(lambda a: IntegrationList(), _listed))
    rotate = actions.add_parser("rotate", help="issue a new token; the old one is refused at once")
    rotate.add_argument("name", metavar="NAME", help="the integration")
    rotate.set_defaults(run=admin_command(lambda a: IntegrationRotate(name=a.name), _rotated))
    revoke = actions.add_parser("revoke", help="refuse its token from now on (its bot account and archive stay)")
    revoke.add_argument("name", metavar="NAME", help="the integration")
    revoke.set_defaults(run=admin_command(lambda a: IntegrationRevoke(name=a.name), _revoked))
    return [add, listing, rotate, revoke]

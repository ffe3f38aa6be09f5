"""`corridor desktop`: open the desktop window (Qt is imported only here, when asked for)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from ..profile import default_profile_dir
from .output import EXIT_USAGE, fail


def _run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("PySide6") is None:
        return fail("desktop", "NO_QT", "the desktop needs Qt: pip install 'corridor[desktop]'", False, EXIT_USAGE)
    from ..desktop.app import run

    return run(args.profile or default_profile_dir(), interfaces=args.interface, discover=not args.no_discover)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor desktop`."""
    p = sub.add_parser("desktop", help="open the desktop window (first run: find the server, paste the invite)")
    p.add_argument("--profile", type=Path, metavar="DIR", help="profile dir (default: $CORRIDOR_PROFILE or the user config dir)")
    p.add_argument(
        "--interface",
        action="append",
        metavar="IP",
        help="look for servers by mDNS only on this interface address (repeatable; default: every interface)",
    )
    p.add_argument("--no-discover", action="store_true", help="never look for the server on the LAN; use the saved address only")
    p.set_defaults(run=_run)

#!/usr/bin/env bash
# Install Corridor on Debian/Ubuntu as a hardened systemd service (docs/deploy.md).
#
# Run as root from a checkout or an unpacked source tree. It creates the system user, a venv in
# /opt/corridor/venv, the data dir /var/lib/corridor (by running `corridor init` as that user)
# and the unit corridor.service, then enables and starts it. Running it again upgrades the venv
# in place and keeps the data dir; the server applies schema migrations when it starts.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/install.sh [OPTIONS]

  --org NAME          organisation name; required when the data dir is created
  --listen HOST:PORT  listen address of a new data dir (default 127.0.0.1:7740, this machine
                      only; 0.0.0.0:7740 serves the LAN)
  --hostname NAME     name clients use to reach the server, put in the certificate and the
                      invites (repeatable; the first one goes into invites)
  --python PATH       interpreter for the venv, Python 3.11 or newer (default /usr/bin/python3)
  --user NAME         service user and group (default corridor)
  --root DIR          install under DIR instead of / (for tests): creates no account, runs no
                      systemctl; files belong to --user only if that user already exists
  --no-start          install and enable the unit, but do not start the service
  -h, --help          show this help

--org, --listen and --hostname only matter the first time: an existing data dir is kept as it is.
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 2
}

ORG=""
LISTEN=""
HOSTNAMES=()
PYTHON=/usr/bin/python3
SVC_USER=corridor
ROOT=""
START=1
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --no-start)
            START=0
            shift
            continue
            ;;
        --org | --listen | --hostname | --python | --user | --root)
            [ $# -ge 2 ] || die "$1 needs a value (see --help)"
            ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    case "$1" in
        --org) ORG="$2" ;;
        --listen) LISTEN="$2" ;;
        --hostname) HOSTNAMES+=(--hostname "$2") ;;
        --python) PYTHON="$2" ;;
        --user) SVC_USER="$2" ;;
        --root) ROOT="$2" ;;
    esac
    shift 2
done

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
grep -qs '^name = corridor$' "$SOURCE/setup.cfg" ||
    die "$SOURCE is not a Corridor source tree (no setup.cfg for corridor)"
[[ "$SVC_USER" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "--user $SVC_USER is not a valid user name"

if [ -n "$ROOT" ]; then
    ROOT="$(realpath -m "$ROOT")"
    [ "$ROOT" != / ] || die "--root / is this system itself: leave --root out"
else
    [ "$(id -u)" -eq 0 ] || die "run as root (for example: sudo $0 --org 'Example Ltd')"
    [ -d /run/systemd/system ] || die "systemd is not running on this host (--root DIR makes a test install)"
    for tool in useradd groupadd runuser systemctl; do
        command -v "$tool" >/dev/null || die "$tool is missing (Debian/Ubuntu have it in the base system)"
    done
fi
VENV="$ROOT/opt/corridor/venv"
DATA="$ROOT/var/lib/corridor"
UNIT="$ROOT/etc/systemd/system/corridor.service"

# -- the interpreter -----------------------------------------------------------------------------

if [[ "$PYTHON" != */* ]]; then
    PYTHON="$(command -v "$PYTHON")" || die "--python: no $PYTHON on PATH"
fi
[ -x "$PYTHON" ] || die "--python: $PYTHON is not an executable (install python3, or pass --python PATH)"
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" ||
    die "--python: $PYTHON does not run"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "Corridor needs Python 3.11 or newer; $PYTHON is Python $PY_VERSION. Install a newer one (e.g. apt-get install python3.11) and pass --python /usr/bin/python3.11"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
    die "$PYTHON (Python $PY_VERSION) cannot make virtualenvs: apt-get install python3-venv (or python${PY_VERSION%.*}-venv)"
PY_HOME="$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')"
case "$PY_HOME/" in
    /home/* | /root/* | /run/user/*)
        die "$PYTHON lives in $PY_HOME, which the unit's ProtectHome=yes hides from the service: use a system-wide Python (/usr/bin/python3, or one under /usr/local or /opt)"
        ;;
esac

# -- decide about the data dir before changing anything -----------------------------------------

if [ -f "$DATA/corridor.toml" ]; then
    NEW_DATA=0
elif [ ! -e "$DATA" ] || { [ -d "$DATA" ] && [ -z "$(ls -A "$DATA")" ]; }; then
    NEW_DATA=1
    [ -n "$ORG" ] || die "--org NAME is required to create the data dir $DATA"
else
    die "$DATA exists but holds no corridor.toml; refusing to touch it (move it away, or restore a complete data dir there)"
fi
if [ "$NEW_DATA" = 0 ] && { [ -n "$ORG" ] || [ -n "$LISTEN" ] || [ ${#HOSTNAMES[@]} -gt 0 ]; }; then
    echo "Note: $DATA exists and is kept as it is; --org/--listen/--hostname are ignored (edit $DATA/corridor.toml)."
fi

# -- the service account -------------------------------------------------------------------------

OWNER=""
if [ -z "$ROOT" ]; then
    if ! getent group "$SVC_USER" >/dev/null; then
        groupadd --system "$SVC_USER"
        echo "Created group $SVC_USER."
    fi
    if ! getent passwd "$SVC_USER" >/dev/null; then
        useradd --system --gid "$SVC_USER" --home-dir /var/lib/corridor --no-create-home \
            --shell /usr/sbin/nologin --comment "Corridor messenger server" "$SVC_USER"
        echo "Created system user $SVC_USER (no login shell)."
    fi
    OWNER="$SVC_USER"
elif [ "$(id -u)" -eq 0 ] && getent passwd "$SVC_USER" >/dev/null; then
    OWNER="$SVC_USER"
else
    echo "Note: test install under $ROOT: no user $SVC_USER here, so its files belong to $(id -un)."
fi
SVC_GROUP="$SVC_USER"
if [ -n "$OWNER" ]; then
    SVC_GROUP="$(id -gn "$OWNER")"
fi

as_owner() {
    # `corridor init` runs as the service user, so everything in the data dir is its own.
    if [ -n "$OWNER" ]; then
        (cd / && runuser -u "$OWNER" -- "$@")
    else
        "$@"
    fi
}

unit_active() {
    [ -z "$ROOT" ] && systemctl is-active --quiet corridor.service
}

WAS_RUNNING=0
stop_service() {
    if unit_active; then
        echo "Stopping corridor.service for the upgrade …"
        systemctl stop corridor.service
        WAS_RUNNING=1
    fi
}

# -- the venv ------------------------------------------------------------------------------------

# The venv and the unit are readable by everyone (the service user runs them); the data dir is not.
umask 022
WORK="$(mktemp -d)"
on_exit() {
    local status=$?
    rm -rf "$WORK"
    if [ "$status" -ne 0 ] && [ "$WAS_RUNNING" = 1 ] && ! unit_active; then
        echo "install.sh: corridor.service was stopped for the upgrade and is not running;" \
            "fix the problem above and run install.sh again (or: systemctl start corridor)" >&2
    fi
}
trap on_exit EXIT

# Build from a copy: a pip build writes build/ and *.egg-info into the tree it builds, and the
# tree may be read-only or someone's working copy.
mkdir "$WORK/src"
tar -C "$SOURCE" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=./corridor-data -cf - . | tar -C "$WORK/src" -xf -

same_python() {
    [ -x "$VENV/bin/python" ] &&
        [ "$("$VENV/bin/python" -c 'import os, sys; print(os.path.realpath(sys.base_prefix), sys.version_info[:2])' 2>/dev/null)" = \
            "$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.base_prefix), sys.version_info[:2])')" ]
}

started="$(date +%s)"
if same_python; then
    echo "Upgrading the venv $VENV (Python $PY_VERSION) …"
else
    stop_service
    echo "Creating the venv $VENV with $PYTHON (Python $PY_VERSION) …"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv --clear "$VENV"
fi
# pip runs with this machine's own configuration (pip.conf, PIP_* variables): whatever index,
# mirror or wheel directory it names is used. The service keeps running while wheels are built.
"$VENV/bin/python" -m pip wheel --quiet --wheel-dir "$WORK/wheels" "$WORK/src"
WHEEL="$(find "$WORK/wheels" -name 'corridor-*.whl' -print -quit)"
[ -n "$WHEEL" ] || die "pip built no corridor wheel"
stop_service
"$VENV/bin/python" -m pip install --quiet --upgrade --no-index --find-links "$WORK/wheels" "$WHEEL"
# The same version number does not make pip replace a package; this checkout's code must win.
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps --no-index "$WHEEL"
"$VENV/bin/corridor" --help >/dev/null || die "the installed corridor command does not run"
VERSION="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("corridor"))')"
echo "Installed Corridor $VERSION in $VENV ($(($(date +%s) - started)) s)."

# -- the data dir --------------------------------------------------------------------------------

INIT_JSON=""
if [ "$NEW_DATA" = 1 ]; then
    created_dir=0
    if [ ! -e "$DATA" ]; then
        mkdir -p "$(dirname "$DATA")"
        created_dir=1
    fi
    if [ -n "$OWNER" ]; then
        install -d -m 0700 -o "$OWNER" -g "$SVC_GROUP" "$DATA"
    else
        install -d -m 0700 "$DATA"
    fi
    init_args=(--org "$ORG" "${HOSTNAMES[@]}")
    if [ -n "$LISTEN" ]; then
        init_args+=(--listen "$LISTEN")
    fi
    if ! INIT_JSON="$(as_owner "$VENV/bin/corridor" init "$DATA" "${init_args[@]}" --json)"; then
        if [ "$created_dir" = 1 ]; then
            rm -rf "$DATA"
        fi
        die "corridor init failed (above); nothing was kept in $DATA"
    fi
else
    if [ -n "$OWNER" ] && [ "$(stat -c %U "$DATA")" != "$OWNER" ]; then
        echo "WARNING: $DATA belongs to $(stat -c %U "$DATA"), not $OWNER: the service cannot use it." >&2
        echo "         Fix it with: chown -R $OWNER:$SVC_GROUP $DATA" >&2
    fi
    cat >"$WORK/kept.py" <<'EOF'
import sys
from pathlib import Path

from corridor.deploy.pki import fingerprint
from corridor.server.config import load_config

config = load_config(Path(sys.argv[1]))
ca = fingerprint(config.path(config.tls.ca).read_bytes())
listen = ", ".join(config.server.listen)
print(f"Kept the data dir {config.data_dir} for {config.organisation.name!r}, listening on {listen}.")
print(f"CA fingerprint: sha256:{ca}")
EOF
    "$VENV/bin/python" "$WORK/kept.py" "$DATA"
fi

# -- the unit ------------------------------------------------------------------------------------

mkdir -p "$(dirname "$UNIT")"
sed -e "s/^User=corridor\$/User=$SVC_USER/" -e "s/^Group=corridor\$/Group=$SVC_GROUP/" \
    "$SOURCE/deploy/corridor.service" >"$WORK/corridor.service"
install -m 0644 "$WORK/corridor.service" "$UNIT"
echo "Installed the unit $UNIT."

state="installed (test root: no systemctl)"
if [ -z "$ROOT" ]; then
    systemctl daemon-reload
    systemctl enable --quiet corridor.service
    if [ "$START" = 1 ]; then
        systemctl start corridor.service
        sleep 2
        if ! systemctl is-active --quiet corridor.service; then
            journalctl -u corridor.service -n 30 --no-pager >&2 || true
            die "corridor.service did not start (its log is above; also: systemctl status corridor)"
        fi
        state="enabled and running"
    elif [ "$WAS_RUNNING" = 1 ]; then
        state="enabled, stopped for the upgrade and not started again (--no-start)"
    else
        state="enabled, not started (--no-start)"
    fi
fi
echo "corridor.service: $state."

# -- what to do next -----------------------------------------------------------------------------

ADMIN="runuser -u $SVC_USER -- $VENV/bin/corridor admin --data $DATA"
if [ -z "$OWNER" ]; then
    ADMIN="$VENV/bin/corridor admin --data $DATA"
fi
echo
if [ -n "$INIT_JSON" ]; then
    cat >"$WORK/created.py" <<'EOF'
import datetime
import json
import sys

init = json.load(sys.stdin)
until = datetime.datetime.fromtimestamp(init["invite_expires"]).strftime("%Y-%m-%d %H:%M")
print(f"Created the data dir {init['data_dir']} for {init['org']!r}, listening on {init['listen']}.")
print(f"CA fingerprint: sha256:{init['ca_sha256']}")
print()
print(f"The first admin ({init['admin']}) enrolls with this one-time invite, valid until {until}.")
print("It is shown only now and stored nowhere else: hand it over in person or over a trusted channel.")
print(f"  {init['invite']}")
print("On the admin's machine:  corridor enroll '<invite>'")
EOF
    # The invite goes through a pipe, not the command line, which other local users can read.
    printf '%s' "$INIT_JSON" | "$VENV/bin/python" "$WORK/created.py"
    echo
fi
echo "Add people while the server runs (each command prints that person's one-time invite):"
echo "  $ADMIN user add alice --name \"Alice Wong\""
echo "  $ADMIN user add audit1 --name \"Audit Team\" --role auditor"
if [ -z "$ROOT" ]; then
    echo "Status and logs:  systemctl status corridor; journalctl -u corridor"
fi

#!/usr/bin/env bash
# Remove what deploy/install.sh installed: stop and disable corridor.service, remove the unit and
# the venv. The data dir (every message, the archive, the CA key) and the service user stay
# unless --purge is given. See docs/deploy.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/uninstall.sh [OPTIONS]

  --purge      also delete the data dir /var/lib/corridor (every message, the archive, the
               CA and its key) and the service user and group: back it up first
  --user NAME  the service user install.sh created (default corridor)
  --root DIR   uninstall from a test install made with install.sh --root DIR: no
               systemctl, no account removed
  -h, --help   show this help
EOF
}

die() {
    echo "uninstall.sh: $*" >&2
    exit 2
}

PURGE=0
SVC_USER=corridor
ROOT=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --purge)
            PURGE=1
            shift
            ;;
        --user | --root)
            [ $# -ge 2 ] || die "$1 needs a value (see --help)"
            if [ "$1" = --user ]; then SVC_USER="$2"; else ROOT="$2"; fi
            shift 2
            ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if [ -n "$ROOT" ]; then
    ROOT="$(realpath -m "$ROOT")"
    [ "$ROOT" != / ] || die "--root / is this system itself: leave --root out"
else
    [ "$(id -u)" -eq 0 ] || die "run as root (for example: sudo $0)"
fi
PREFIX="$ROOT/opt/corridor"
DATA="$ROOT/var/lib/corridor"
UNIT="$ROOT/etc/systemd/system/corridor.service"
SYSTEMD=0
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    SYSTEMD=1
fi

if [ "$SYSTEMD" = 1 ] && systemctl cat corridor.service >/dev/null 2>&1; then
    echo "Stopping and disabling corridor.service …"
    systemctl disable --now --quiet corridor.service
fi
if [ -e "$UNIT" ]; then
    rm -f "$UNIT"
    echo "Removed the unit $UNIT."
fi
if [ "$SYSTEMD" = 1 ]; then
    systemctl daemon-reload
    systemctl reset-failed corridor.service 2>/dev/null || true
fi
if [ -e "$PREFIX/venv" ]; then
    rm -rf "$PREFIX/venv"
    echo "Removed the venv $PREFIX/venv."
fi
rmdir "$PREFIX" 2>/dev/null || true

if [ "$PURGE" = 0 ]; then
    if [ -e "$DATA" ]; then
        kept="the data dir $DATA (messages, archive, CA key)"
        if [ -z "$ROOT" ] && getent passwd "$SVC_USER" >/dev/null; then
            kept="$kept and the user $SVC_USER"
        fi
        echo "Kept $kept."
        echo "install.sh uses them again; uninstall.sh --purge deletes them."
    fi
    exit 0
fi

# Only an account that install.sh made is deleted: never an existing user passed as --user.
OURS=0
if [ -z "$ROOT" ] && [ "$(getent passwd "$SVC_USER" | cut -d: -f5)" = "Corridor messenger server" ]; then
    OURS=1
elif [ -z "$ROOT" ] && getent passwd "$SVC_USER" >/dev/null; then
    echo "Note: $SVC_USER was not created by install.sh; keeping that account."
fi
echo "--purge deletes, now:"
if [ -e "$DATA" ]; then
    echo "  the data dir $DATA ($(du -sh "$DATA" | cut -f1)): every message, the archive, the CA and its key"
fi
if [ "$OURS" = 1 ]; then
    echo "  the system user $SVC_USER and its group"
fi
rm -rf "$DATA"
if [ "$OURS" = 1 ]; then
    userdel "$SVC_USER"
    if getent group "$SVC_USER" >/dev/null; then
        groupdel "$SVC_USER"
    fi
fi
echo "Purged."

#!/bin/sh
# Install (or upgrade, or roll back) Shelfwatch on a Debian device or training server.
#
#   deploy/install.sh [--root DIR] [--role edge|trainer] [--from SRC] [--pip-args "ARGS"] [--no-start]
#   deploy/install.sh [--root DIR] --rollback
#
#   --root DIR     install into DIR instead of / (packaging, tests); users are then not created and services are
#                  enabled with `systemctl --root` but not started
#   --role R       edge (device agent, default) or trainer (training service, pulls in torch)
#   --from SRC     what pip installs: the source folder (default: this repository) or a built wheel
#   --pip-args A   extra pip arguments (e.g. "--no-index --find-links /media/wheels" on an offline device)
#   --no-start     enable the unit but do not (re)start it
#   --rollback     point /opt/shelfwatch/venv back at the previous release and restart
#
# Layout: each install is a new venv in /opt/shelfwatch/releases/<UTC time>/; /opt/shelfwatch/venv is a symlink to
# the current one and /opt/shelfwatch/previous to the one before, which is what --rollback swaps back. Units go to
# /etc/systemd/system/, the example config to /etc/shelfwatch/<role>.yaml (never overwritten), generated secrets to
# /etc/shelfwatch/credentials/ (mode 700, never overwritten). Requires python3 (>= 3.11) with venv and systemd.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
root=/
role=edge
src=$repo
pip_args=""
start=yes
rollback=no

while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --role) role=$2; shift 2 ;;
        --from) src=$2; shift 2 ;;
        --pip-args) pip_args=$2; shift 2 ;;
        --no-start) start=no; shift ;;
        --rollback) rollback=yes; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$role" in
    edge) unit=shelfwatch-edge.service; user=shelfwatch; extra=edge ;;
    trainer) unit=shelfwatch-trainer.service; user=shelfwatch-trainer; extra=trainer ;;
    *) echo "--role must be edge or trainer" >&2; exit 2 ;;
esac

root=${root%/}
opt="$root/opt/shelfwatch"
etc="$root/etc/shelfwatch"
units="$root/etc/systemd/system"
live=no
[ -z "$root" ] && live=yes

say() { echo "install.sh: $*"; }

systemctl_do() {
    if [ "$live" = yes ]; then
        systemctl "$@"
    else
        systemctl --root="$root" "$@"
    fi
}

if [ "$rollback" = yes ]; then
    [ -L "$opt/previous" ] || { echo "no previous release to roll back to ($opt/previous)" >&2; exit 1; }
    current=$(readlink "$opt/venv")
    previous=$(readlink "$opt/previous")
    ln -sfn "$previous" "$opt/venv.new" && mv -T "$opt/venv.new" "$opt/venv"
    ln -sfn "$current" "$opt/previous.new" && mv -T "$opt/previous.new" "$opt/previous"
    say "venv now points at $previous (was $current)"
    if [ "$live" = yes ] && [ "$start" = yes ]; then
        systemctl restart "$unit"
    fi
    exit 0
fi

command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3 python3-venv" >&2; exit 1; }

# 1. a fresh venv for this release; the running one stays untouched until the symlink switches
release="releases/$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$opt/releases"
say "creating $opt/$release"
python3 -m venv "$opt/$release"
if [ -d "$src" ]; then target="$src[$extra]"; else target="$src"; fi
if [ "$role" = trainer ] && [ -z "$pip_args" ]; then
    # torch from the CPU index: the default index would pull several GiB of CUDA libraries
    # shellcheck disable=SC2086
    "$opt/$release/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu "torch==2.13.*"
fi
# shellcheck disable=SC2086
"$opt/$release/bin/pip" install --quiet $pip_args "$target"
[ -x "$opt/$release/bin/shelfwatch" ] || { echo "pip did not install the shelfwatch command" >&2; exit 1; }

# 2. switch: previous <- current, venv <- new (relative links, so --root trees stay relocatable)
if [ -L "$opt/venv" ]; then
    ln -sfn "$(readlink "$opt/venv")" "$opt/previous.new" && mv -T "$opt/previous.new" "$opt/previous"
fi
ln -sfn "$release" "$opt/venv.new" && mv -T "$opt/venv.new" "$opt/venv"
say "$opt/venv -> $release"

# 3. the system user (only on a live system: useradd must see the real /etc/passwd)
if [ "$live" = yes ]; then
    if ! id "$user" >/dev/null 2>&1; then
        useradd --system --home-dir "/var/lib/$user" --no-create-home --shell /usr/sbin/nologin "$user"
        say "created system user $user"
    fi
    if [ "$role" = edge ] && getent group video >/dev/null; then
        usermod -a -G video "$user"
    fi
else
    say "--root given: not creating user $user (the unit's User= must exist on the target)"
fi

# 4. config and credentials (kept when present: an upgrade never touches them)
mkdir -p "$etc"
install -d -m 0700 "$etc/credentials"
if [ ! -e "$etc/$role.yaml" ]; then
    install -m 0644 "$here/$role.yaml" "$etc/$role.yaml"
    say "wrote $etc/$role.yaml: edit it (device id, cameras, broker)"
fi
new_secret() {
    if [ ! -s "$etc/credentials/$1" ]; then
        (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$etc/credentials/$1")
        say "generated $etc/credentials/$1"
    fi
}
if [ "$role" = edge ]; then
    new_secret web-secret-key
    new_secret mqtt-password
    say "register the device on the broker with this password: deploy/mosquitto/make-passwords.sh"
else
    new_secret trainer-token
    if [ ! -s "$etc/credentials/bundle-signing-key" ]; then
        # ed25519 in PEM (PKCS#8), what `shelfwatch keys generate` writes too
        (umask 077; openssl genpkey -algorithm ed25519 -out "$etc/credentials/bundle-signing-key")
        openssl pkey -in "$etc/credentials/bundle-signing-key" -pubout -out "$etc/bundle-signing.pub"
        say "generated the bundle signing key; devices trust $etc/bundle-signing.pub"
    fi
fi

# 5. the unit, enabled
install -d "$units"
install -m 0644 "$repo/systemd/$unit" "$units/$unit"
if [ "$live" = yes ]; then
    systemctl daemon-reload
fi
systemctl_do enable "$unit" >/dev/null 2>&1 || systemctl_do enable "$unit"
say "enabled $unit"
if [ "$live" = yes ] && [ "$start" = yes ]; then
    systemctl restart "$unit"
    say "started $unit: journalctl -u $unit -f"
fi

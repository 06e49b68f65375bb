#!/bin/sh
# Create or update the Mosquitto password file for Shelfwatch users (device ids, homeassistant, shelfwatch-admin).
#
#   make-passwords.sh [-d DIR] USER...
#
# For each USER the password is read from DIR/passwords/USER when that file exists (so you can set one, or keep the
# one a device's install generated), otherwise a random one is generated and saved there (mode 600). DIR/passwd is
# rebuilt with mosquitto_passwd from all of DIR/passwords/*. Copy DIR/passwd to /etc/mosquitto/shelfwatch/passwd
# and give each device its password as /etc/shelfwatch/credentials/mqtt-password.
set -eu

dir=/etc/mosquitto/shelfwatch
if [ "${1:-}" = "-d" ]; then
    dir=$2
    shift 2
fi
if [ $# -eq 0 ] && [ ! -d "$dir/passwords" ]; then
    echo "usage: $0 [-d DIR] USER..." >&2
    exit 2
fi
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd not found: apt-get install mosquitto" >&2; exit 1; }

umask 077
mkdir -p "$dir/passwords"
for user in "$@"; do
    case "$user" in
        *[!A-Za-z0-9._-]* | "" | .*) echo "bad user name '$user' (letters, digits, . _ - only)" >&2; exit 2 ;;
    esac
    if [ ! -s "$dir/passwords/$user" ]; then
        # 24 random bytes, base64 without characters a shell or a YAML file would trip over
        openssl rand -base64 24 | tr -d '\n/+=' > "$dir/passwords/$user"
        echo "generated a password for $user in $dir/passwords/$user"
    fi
done

tmp="$dir/passwd.tmp.$$"
: > "$tmp"
for file in "$dir"/passwords/*; do
    [ -f "$file" ] || continue
    mosquitto_passwd -b "$tmp" "$(basename "$file")" "$(cat "$file")"
done
# mosquitto reads the file as its own user; keep it private to that user and root.
chmod 640 "$tmp"
mv "$tmp" "$dir/passwd"
echo "wrote $dir/passwd ($(wc -l < "$dir/passwd") users)"

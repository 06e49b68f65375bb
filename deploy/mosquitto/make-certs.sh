#!/bin/sh
# Make a test CA and a broker certificate for Mosquitto's TLS listener (for production use your own CA).
#
#   make-certs.sh [-d DIR] [-days N] SERVER_NAME [MORE_NAMES_OR_IPS...]
#
# Writes DIR/ca.key, DIR/ca.crt, DIR/server.key, DIR/server.crt (default DIR /etc/mosquitto/shelfwatch/certs).
# The CA is kept when it exists, so re-running renews only the server certificate. Devices trust DIR/ca.crt
# (edge.yaml mqtt.tls.ca_file).
set -eu

dir=/etc/mosquitto/shelfwatch/certs
days=825
while [ $# -gt 0 ]; do
    case "$1" in
        -d) dir=$2; shift 2 ;;
        -days) days=$2; shift 2 ;;
        *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: $0 [-d DIR] [-days N] SERVER_NAME [MORE_NAMES_OR_IPS...]" >&2
    exit 2
fi
command -v openssl >/dev/null || { echo "openssl not found: apt-get install openssl" >&2; exit 1; }

umask 077
mkdir -p "$dir"
if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.crt" ]; then
    openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/CN=Shelfwatch test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    echo "made CA $dir/ca.crt"
fi

san=""
for name in "$@"; do
    case "$name" in
        *[!0-9.]*) entry="DNS:$name" ;;
        *) entry="IP:$name" ;;
    esac
    san="${san:+$san,}$entry"
done

cnf="$dir/server.cnf.$$"
cat > "$cnf" <<CNF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
CNF
openssl req -newkey rsa:2048 -sha256 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$1" 2>/dev/null
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -sha256 -extfile "$cnf" -out "$dir/server.crt" 2>/dev/null
rm -f "$cnf" "$dir/server.csr"
chmod 644 "$dir/ca.crt" "$dir/server.crt"
chmod 640 "$dir/server.key"
echo "made server certificate $dir/server.crt for $san"

#!/bin/sh
# Certificates for the cluster port's mutual TLS, made with openssl.
#
#   deploy/make-cluster-certs.sh DIR FILE NAME...
#
# Makes DIR/ca.pem and DIR/ca.key, the cluster's CA, unless they exist (keep ca.key secret and
# off the nodes), then DIR/FILE.pem and DIR/FILE.key: a certificate from that CA naming every
# NAME (host names, wildcards such as '*.pemba-peer.default.svc.cluster.local', or IP
# addresses), for server and client authentication, valid for PEMBA_CERT_DAYS days (365).
# A node's certificate must name the host in its --cluster-addr; naming 127.0.0.1 as well lets
# `pemba cluster` run inside the node's container reach it at its default endpoint.
#
# Run it again to renew a certificate: the key is replaced before the certificate, and a node
# re-reads both within --cluster-tls-reload-interval (10 s) or at once on SIGHUP.
set -eu
if [ $# -lt 3 ]; then
    echo "usage: $0 DIR FILE NAME..." >&2
    exit 2
fi
dir=$1
file=$2
shift 2
days=${PEMBA_CERT_DAYS:-365}
mkdir -p "$dir"

if [ ! -f "$dir/ca.key" ]; then
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key")
    openssl req -x509 -new -key "$dir/ca.key" -out "$dir/ca.pem" -days 3650 \
        -subj "/CN=Pemba cluster CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    echo "made the CA: $dir/ca.pem (keep $dir/ca.key off the nodes)" >&2
fi

sans=""
for name in "$@"; do
    case $name in
        *:*) kind=IP ;;        # IPv6
        *[!0-9.]*) kind=DNS ;; # anything but digits and dots
        *) kind=IP ;;          # IPv4
    esac
    sans="${sans:+$sans,}$kind:$name"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$sans
EXT
(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/key")
openssl req -new -key "$work/key" -out "$work/csr" -subj "/CN=$1"
openssl x509 -req -in "$work/csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$work/ext" -out "$work/pem"
# The nodes of deploy/docker-compose.yml run as uid 10001: PEMBA_CERT_OWNER=10001 (as root).
if [ -n "${PEMBA_CERT_OWNER:-}" ]; then
    chown "$PEMBA_CERT_OWNER" "$work/key"
fi
mv "$work/key" "$dir/$file.key"
mv "$work/pem" "$dir/$file.pem"
echo "made $dir/$file.pem for $sans" >&2

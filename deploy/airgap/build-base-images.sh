#!/usr/bin/env bash
# Build stand-in base images (Python, Redis, HAProxy) from Debian packages, for machines that
# cannot pull from a container registry. Reuses images that already exist unless --force.
#
#   deploy/airgap/build-base-images.sh [--ca-bundle FILE] [--force]
#
# --ca-bundle FILE (or EXTRA_CA_BUNDLE=FILE) adds the CA certificates in FILE to the images,
# for sites whose TLS goes through an inspecting proxy (pip inside `docker build` needs it).
# The last lines printed (stdout) are the variables to export before `docker compose`:
#   eval "$(deploy/airgap/build-base-images.sh)"
set -euo pipefail

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON_IMAGE=${AIRGAP_PYTHON_IMAGE:-local/python:3.11-bookworm}
REDIS_IMAGE=${AIRGAP_REDIS_IMAGE:-local/redis:7-bookworm}
LB_IMAGE=${AIRGAP_LB_IMAGE:-local/haproxy:2.6-bookworm}
ca_bundle=${EXTRA_CA_BUNDLE:-}
force=false

while (($#)); do
    case "$1" in
        --ca-bundle) ca_bundle=${2:?--ca-bundle needs a file}; shift 2 ;;
        --force) force=true; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '%s\n' "$*" >&2; }
have_image() { ! $force && docker image inspect "$1" >/dev/null 2>&1; }

for tool in docker debootstrap; do
    command -v "$tool" >/dev/null || { say "missing $tool: apt-get install docker.io debootstrap"; exit 1; }
done
if [[ -n "$ca_bundle" && ! -r "$ca_bundle" ]]; then
    say "CA bundle $ca_bundle is not readable"; exit 1
fi

if have_image "$PYTHON_IMAGE"; then
    say "reusing $PYTHON_IMAGE"
else
    say "building $PYTHON_IMAGE with debootstrap (about a minute)"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$rootfs" "$MIRROR" >&2
    if [[ -n "$ca_bundle" ]]; then
        # Kept where update-ca-certificates looks, and appended now to the active bundle.
        install -m 0644 "$ca_bundle" "$rootfs/usr/local/share/ca-certificates/airgap-extra.crt"
        cat "$ca_bundle" >> "$rootfs/etc/ssl/certs/ca-certificates.crt"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
        -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$PYTHON_IMAGE" >&2
    rm -rf "$rootfs"
    trap - EXIT
fi

build_on_python() {  # image, Dockerfile body (after FROM)
    local image=$1 body=$2
    if have_image "$image"; then
        say "reusing $image"
        return
    fi
    say "building $image"
    printf 'FROM %s\n%s\n' "$PYTHON_IMAGE" "$body" | docker build -q -t "$image" - >&2
}

# Like the official image: no config file means protected mode off (the port is private to
# the container network), data in /data, run as the redis user.
build_on_python "$REDIS_IMAGE" '
RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]'

# Like the official image: config at /usr/local/etc/haproxy/haproxy.cfg, run as haproxy.
build_on_python "$LB_IMAGE" '
RUN apt-get update && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /usr/local/etc/haproxy
USER haproxy
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'

echo "export PYTHON_IMAGE=$PYTHON_IMAGE"
echo "export REDIS_IMAGE=$REDIS_IMAGE"
echo "export LB_IMAGE=$LB_IMAGE"

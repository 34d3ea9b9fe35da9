#!/usr/bin/env bash
# Validate docker-compose.yml with the docker-compose that Debian bookworm ships (1.29.2).
# Needs no Docker engine: `config -q` only parses, interpolates and schema-checks the file.
#
#   scripts/check-compose.sh      exit 0 and print "docker-compose.yml: valid" when it is
#
# Installs the Debian `docker-compose` package if it is missing (as root, or via `sudo -n`).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
COMPOSE_FILE="$REPO/docker-compose.yml"

install_compose() {
    local -a as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            echo "check-compose: docker-compose is not installed and this is not root (and passwordless sudo is unavailable)." >&2
            echo "check-compose: install it first:  sudo apt-get install -y --no-install-recommends docker-compose" >&2
            exit 1
        fi
    fi
    echo "check-compose: installing docker-compose (apt)..." >&2
    # Try without touching the package lists first; refresh them only if that fails.
    if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose >&2; then
        "${as_root[@]}" apt-get update >&2
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose >&2
    fi
}

command -v docker-compose >/dev/null 2>&1 || install_compose

if [ ! -f "$COMPOSE_FILE" ]; then
    echo "check-compose: $COMPOSE_FILE not found." >&2
    exit 1
fi

status=0
docker-compose -f "$COMPOSE_FILE" config -q || status=$?
if [ "$status" -eq 0 ]; then
    echo "docker-compose.yml: valid"
else
    echo "docker-compose.yml: INVALID (docker-compose config exited with $status)" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Installs the Debian packages named as arguments (apt-get, no recommends), as root or through
# sudo. The install scripts call it for the tools a test needs and the machine lacks; a test
# never skips for a missing tool, so what it needs is installed here or the run stops.
#
#   scripts/apt-install.sh <package>...
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: scripts/apt-install.sh <package>..." >&2; exit 2; }
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install $*" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "Installing Debian packages: $*"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"

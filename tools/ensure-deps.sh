#!/bin/sh
# Installs convkit's build and test dependencies on Debian/Ubuntu when they are missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -e
missing=""
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || missing="$missing $1"; }
for p in cmake gcc make pkg-config libcriterion-dev $CONVKIT_EXTRA_DEPS; do need "$p"; done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "convkit: missing packages:$missing (install them with your package manager)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "convkit: missing packages. Run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
echo "convkit: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null

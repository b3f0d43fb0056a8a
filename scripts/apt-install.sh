#!/bin/sh
# Installs the given Debian packages that are missing (as root, or through sudo); adds the arm64
# architecture first when a package asks for it (`name:arm64`). Idempotent.
# Usage: scripts/apt-install.sh PACKAGE...
set -eu
need=""
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
[ -n "$need" ] || exit 0
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
case "$need" in
  *:arm64*) dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64 ;;
esac
echo "binoc: installing$need" >&2
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need

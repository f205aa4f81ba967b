#!/usr/bin/env bash
# The real servers the tests start (each on loopback, in a temp dir): installs the Debian packages
# that are missing when this user may (root, or passwordless sudo); otherwise names exactly what to
# install and exits non-zero. `make test` runs it first; `.ci/run` only calls `make test`.
set -euo pipefail
# binary the tests look for -> Debian package that provides it
declare -A NEED=(
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh-keygen]=openssh-client
  [/usr/bin/sftp]=openssh-client
  [/usr/bin/systemd-analyze]=systemd
  [pg_ctl]=postgresql
  [/usr/sbin/nats-server]=nats-server
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/promtool]=prometheus
  [/usr/bin/chromium]=chromium
)
have() {
  case "$1" in
    pg_ctl) command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 ;;
    *) [ -x "$1" ] ;;
  esac
}
missing=()
for bin in "${!NEED[@]}"; do
  have "$bin" || missing+=("${NEED[$bin]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "make test needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing test servers: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# the packages' own services are not wanted: the tests start their own on loopback
echo exit 101 | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for bin in "${!NEED[@]}"; do
  have "$bin" || { echo "still missing after install: $bin (${NEED[$bin]})" >&2; exit 1; }
done

# Sourced by scripts/demo and scripts/test: create (once) and update (when pyproject.toml changes) .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {  # apt_install PACKAGE... : install Debian packages when we can, say so when we cannot
  if ! command -v apt-get >/dev/null; then echo "apt-get not found; install $* by hand" >&2; return 1; fi
  echo "installing $* with apt-get" >&2
  if [ ! -f /tmp/.azure-backup-exporter-apt-updated ]; then
    _as_root apt-get update -qq && touch /tmp/.azure-backup-exporter-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian and Ubuntu ship venv's pip bootstrap separately.
    rm -rf "$VENV"
    apt_install python3-venv && "$PYTHON" -m venv "$VENV"
  fi
fi

EXTRAS="${EXTRAS:-}"
STAMP="$VENV/.stamp-$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)${EXTRAS:+-$EXTRAS}"
if [ ! -f "$STAMP" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  touch "$STAMP"
fi

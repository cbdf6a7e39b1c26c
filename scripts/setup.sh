#!/usr/bin/env bash
# Set up simsiam-tfx on this machine: system libraries TFX 1.21 needs (only where missing),
# then a Python 3.11 virtual environment (.venv) with the locked dependency set.
# Idempotent: a second run checks, finds everything in place, and returns in seconds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="${SIMSIAM_VENV:-$here/.venv}"
lock="$here/requirements-test.lock"  # the runtime set (requirements.lock) plus the test tools
stamp="$venv/.simsiam-setup-stamp"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 1. System libraries. ml-metadata and tensorflow-data-validation 1.21 ship manylinux_2_39 wheels
#    only: they need glibc >= 2.38 and GCC 13's libstdc++. Debian 12 has glibc 2.36, so there we
#    take libc6/libstdc++6 from Debian 13 ("trixie"), pinned at priority 100 so nothing else is
#    upgraded unless asked for by name.
# ---------------------------------------------------------------------------------------------
glibc_version() { getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}'; }
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

need_glibc="2.39"
have_glibc="$(glibc_version)"
[ -n "$have_glibc" ] || die "cannot read the glibc version (getconf GNU_LIBC_VERSION); a glibc-based Linux is required"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
can_be_root() { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }
apt_ready=""
apt_update() { [ -n "$apt_ready" ] || { as_root apt-get update -qq; apt_ready=1; }; }

if version_ge "$have_glibc" "$need_glibc"; then
  say "glibc $have_glibc >= $need_glibc: no system upgrade needed"
else
  . /etc/os-release 2>/dev/null || true
  [ "${ID:-}" = debian ] || die "glibc $have_glibc < $need_glibc and this is not Debian (${PRETTY_NAME:-unknown}); use Debian 13 / Ubuntu 24.04 or the container image in kubeflow/Dockerfile"
  can_be_root || die "glibc $have_glibc < $need_glibc: installing glibc/libstdc++ from Debian 13 needs root (run as root or with passwordless sudo)"
  say "glibc $have_glibc < $need_glibc on ${PRETTY_NAME:-Debian}: installing libc6, libc6-dev, libstdc++6 from Debian 13 (trixie), pinned at priority 100"
  if [ ! -f /etc/apt/sources.list.d/simsiam-trixie.sources ]; then
    as_root tee /etc/apt/sources.list.d/simsiam-trixie.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  if [ ! -f /etc/apt/preferences.d/simsiam-trixie ]; then
    as_root tee /etc/apt/preferences.d/simsiam-trixie >/dev/null <<'PIN'
# Added by simsiam-tfx scripts/setup.sh: take trixie packages only when asked for by name.
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  fi
  apt_update
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q -t trixie libc6 libc6-dev libstdc++6 \
    || die "apt-get could not install libc6/libstdc++6 from trixie (see the messages above)"
  have_glibc="$(glibc_version)"
  version_ge "$have_glibc" "$need_glibc" || die "glibc is still $have_glibc after the upgrade"
  say "glibc is now $have_glibc"
fi

# ---------------------------------------------------------------------------------------------
# 2. Python 3.11 (the only Python TFX 1.21 and kfp<2.17 both support here), venv, compiler
#    (pyfarmhash has no wheel for 3.11 and builds from source).
# ---------------------------------------------------------------------------------------------
find_python() {
  for c in "${SIMSIAM_PYTHON:-}" python3.11 python3; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null || continue
    if "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}
py="$(find_python || true)"
missing_tools=""
command -v gcc >/dev/null || missing_tools="gcc g++"
if [ -z "$py" ] || [ -n "$missing_tools" ] || ! python3.11 -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
  if [ -z "$py" ] || [ -n "$missing_tools" ]; then
    . /etc/os-release 2>/dev/null || true
    case "${ID:-}" in debian|ubuntu) ;; *) die "need Python 3.11 with venv, its headers and a C compiler; install them and re-run" ;; esac
    can_be_root || die "need Python 3.11 (with venv and headers) and gcc; installing them needs root"
    say "installing Python 3.11, venv, headers and a C/C++ compiler with apt"
    apt_update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q python3.11 python3.11-venv python3.11-dev gcc g++ ca-certificates git \
      || die "apt-get could not install python3.11/gcc"
    py="$(find_python)" || die "python3.11 with venv still not usable"
  fi
fi
say "python: $py ($("$py" -V 2>&1))"

# ---------------------------------------------------------------------------------------------
# 3. Virtual environment with the locked sets (requirements.lock and the test tools of
#    requirements-test.lock), then this project (editable).
# ---------------------------------------------------------------------------------------------
lock_hash="$(cat "$here/requirements.lock" "$lock" pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ] && "$venv/bin/python" -c 'import tfx' 2>/dev/null; then
  say "virtual environment $venv is up to date"
else
  if [ ! -x "$venv/bin/python" ]; then
    say "creating virtual environment $venv"
    "$py" -m venv "$venv"
  fi
  say "installing the locked dependency set (requirements.lock, requirements-test.lock); the first time takes a few minutes"
  "$venv/bin/python" -m pip install -q --upgrade pip==25.3 setuptools==80.9.0 wheel==0.45.1
  "$venv/bin/python" -m pip install -q --no-deps -r "$lock"
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e ".[test]"
  "$venv/bin/python" -m pip check >/dev/null || { "$venv/bin/python" -m pip check; die "installed set is inconsistent"; }
  echo "$lock_hash" > "$stamp"
fi

# ---------------------------------------------------------------------------------------------
# 4. With --test (./simsiam test, CI): Chromium from the distribution's packages, for the run
#    report's browser test. Without root/apt the test is skipped and says why.
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if can_be_root && command -v apt-get >/dev/null; then
    say "installing Chromium (headless) for the run report's browser test"
    apt_update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q chromium >/dev/null \
      || say "apt-get could not install chromium: the browser test will be skipped"
  else
    say "no Chromium and no root/apt to install it: the run report's browser test will be skipped"
  fi
fi
"$venv/bin/python" -c 'import tfx, tensorflow as tf; print("setup: ready: tfx", tfx.__version__, "tensorflow", tf.__version__)' 2>/dev/null \
  || die "TFX does not import in $venv (run $venv/bin/python -c 'import tfx' to see why)"

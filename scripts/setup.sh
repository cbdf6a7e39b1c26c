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

# Quiet set-up: the terminal gets one line per step (what is installed, how long it took); what
# apt and pip print goes to a log, appended per set-up, that a failure names and quotes the end of.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1  # no "new release of pip" notices, no prompts
log="$here/.simsiam/setup.log"  # git-ignored
args="$*"
logged=""
started=$SECONDS
exec 3>&2
took() { local s=$(($SECONDS - $1)); if [ "$s" -lt 60 ]; then echo "$s s"; else echo "$((s / 60)) min $((s % 60)) s"; fi; }
open_log() {
  [ -z "$logged" ] || return 0
  mkdir -p "$(dirname "$log")" 2>/dev/null && touch "$log" 2>/dev/null || log="${TMPDIR:-/tmp}/simsiam-setup-$(id -u).log"
  printf '\n===== %s: scripts/setup.sh%s in %s =====\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "${args:+ $args}" "$here" >>"$log"
  logged=1
}
# step "what" command...: prints "setup: what ... done in N s"; the command's output goes to the log.
# The command runs in an `||` context (set -e is off inside it), so it chains its parts with &&.
step() {
  local what="$1" t=$SECONDS rc=0; shift
  open_log
  printf 'setup: %s ... ' "$what"
  printf '\n--- %s %s\n' "$(date -u +%H:%M:%S)" "$what" >>"$log"
  # The trap runs inside the redirection below: it writes to the terminal's stderr, saved as fd 3.
  trap 'printf "\nsetup: interrupted; what apt/pip printed so far is in %s\n" "$log" >&3; exit 130' INT TERM
  "$@" </dev/null >>"$log" 2>&1 || rc=$?
  trap - INT TERM
  if [ "$rc" = 0 ]; then echo "done in $(took "$t")"; else echo "failed after $(took "$t")"; fi
  return "$rc"
}
# fail "what failed": one line naming the log, then the log's last lines (long ones cut; without
# pip's notes on a machine's absent local package folders).
fail() {
  printf 'setup: error: %s; the full output is in %s, which ends:\n' "$1" "$log" >&2
  { tail -n 60 "$log" | grep -v "is ignored: it is neither a file nor a directory" | tail -n 12 \
      | awk '{ if (length($0) > 240) $0 = substr($0, 1, 240) " [...]"; print "    " $0 }' >&2; } || true
  exit 1
}

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
apt_update() { [ -n "$apt_ready" ] || { as_root apt-get update -q && apt_ready=1; }; }
# env, not a prefix assignment: sudo would drop DEBIAN_FRONTEND; dpkg wants sbin on PATH (ldconfig).
apt_install() { apt_update && as_root env DEBIAN_FRONTEND=noninteractive PATH="$PATH:/usr/sbin:/sbin" apt-get install -y -q "$@"; }

if version_ge "$have_glibc" "$need_glibc"; then
  :  # glibc $have_glibc >= $need_glibc: no system upgrade needed
else
  . /etc/os-release 2>/dev/null || true
  [ "${ID:-}" = debian ] || die "glibc $have_glibc < $need_glibc and this is not Debian (${PRETTY_NAME:-unknown}); use Debian 13 / Ubuntu 24.04 or the container image in kubeflow/Dockerfile"
  can_be_root || die "glibc $have_glibc < $need_glibc: installing glibc/libstdc++ from Debian 13 needs root (run as root or with passwordless sudo)"
  install_trixie_libc() {
    { [ -f /etc/apt/sources.list.d/simsiam-trixie.sources ] || as_root tee /etc/apt/sources.list.d/simsiam-trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    } && { [ -f /etc/apt/preferences.d/simsiam-trixie ] || as_root tee /etc/apt/preferences.d/simsiam-trixie <<'PIN'
# Added by simsiam-tfx scripts/setup.sh: take trixie packages only when asked for by name.
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
    } && apt_install -t trixie libc6 libc6-dev libstdc++6
  }
  step "glibc $have_glibc < $need_glibc: installing libc6, libc6-dev, libstdc++6 from Debian 13 (trixie, pinned at priority 100)" \
    install_trixie_libc || fail "apt-get could not install libc6/libstdc++6 from trixie"
  have_glibc="$(glibc_version)"
  version_ge "$have_glibc" "$need_glibc" || die "glibc is still $have_glibc after the upgrade"
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
    step "installing Python 3.11 (venv, headers) and a C/C++ compiler with apt" \
      apt_install python3.11 python3.11-venv python3.11-dev gcc g++ ca-certificates git \
      || fail "apt-get could not install python3.11/gcc"
    py="$(find_python)" || die "python3.11 with venv still not usable"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 3. Virtual environment with the locked sets (requirements.lock and the test tools of
#    requirements-test.lock), then this project (editable).
# ---------------------------------------------------------------------------------------------
lock_hash="$(cat "$here/requirements.lock" "$lock" pyproject.toml | sha256sum | cut -c1-16)"
pip_install() {
  { [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"; } \
    && "$venv/bin/python" -m pip install --progress-bar off --upgrade pip==25.3 setuptools==80.9.0 wheel==0.45.1 \
    && "$venv/bin/python" -m pip install --progress-bar off --no-deps -r "$lock" \
    && "$venv/bin/python" -m pip install --progress-bar off --no-deps --no-build-isolation -e ".[test]" \
    && "$venv/bin/python" -m pip check
}
installed=""
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ] && "$venv/bin/python" -c 'import tfx' 2>/dev/null; then
  :  # the virtual environment is up to date
else
  shown="${venv#"$PWD"/}"
  what="installing the locked dependency set (requirements-test.lock) into a new $shown, a few minutes"
  [ ! -x "$venv/bin/python" ] || what="updating $shown to the locked dependency set (requirements-test.lock)"
  step "$what" \
    pip_install || fail "pip could not install the locked dependency set into $venv"
  echo "$lock_hash" > "$stamp"
  installed=1
fi

# ---------------------------------------------------------------------------------------------
# 4. With --test (./simsiam test, CI): Chromium from the distribution's packages, for the run
#    report's browser test. Without root/apt the test is skipped and says why.
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if can_be_root && command -v apt-get >/dev/null; then
    step "installing Chromium (headless) for the run report's browser test" apt_install chromium \
      || say "apt-get could not install chromium (see $log): the browser test will be skipped"
  else
    say "no Chromium and no root/apt to install it: the run report's browser test will be skipped"
  fi
fi
# After an install, import TensorFlow too (its native libraries against this glibc); otherwise the
# stamp and `import tfx` above suffice and the check costs no TensorFlow start-up.
if [ -n "$installed" ]; then
  versions="$("$venv/bin/python" -c 'import tfx, tensorflow as tf; print(f"tfx {tfx.__version__}, tensorflow {tf.__version__}")' 2>/dev/null)" \
    || die "TFX does not import in $venv (run $venv/bin/python -c 'import tensorflow, tfx' to see why)"
else
  versions="$("$venv/bin/python" -c 'import importlib.metadata as m; v = m.version; print("tfx %s, tensorflow %s" % (v("tfx"), v("tensorflow")))')"
fi
if [ -n "$logged" ]; then
  say "ready in $(took "$started"): $versions, $("$py" -V 2>&1), glibc $have_glibc (apt and pip output: $log)"
else
  say "ready: $versions, $("$py" -V 2>&1), glibc $have_glibc (${venv#"$PWD"/} up to date)"
fi

#!/usr/bin/env bash
# smartcam installer: from a fresh Raspberry Pi OS, Debian or Ubuntu board to a working camera, in one command.
# Safe to run again: every step says what it did, or that it was already done. Stops at the first failure and
# says what to do; run it again afterwards and the finished steps are skipped.
#
# Usage: ./install.sh [OPTIONS]
#   (none)             .venv with the app and its dependencies for this platform, and the models of --pipeline
#   --dev              add the test dependencies: pytest, and from apt mosquitto, chromium, systemd, openssl, gcc
#                      (tests use ../shared, or .venv/bin/python -m app models pull --tests: the pipelines'
#                      models are skipped unless --models-from)
#   --models-from DIR  offline: copy the models from DIR (a folder holding the files under their names)
#   --no-models        do not fetch models (.venv/bin/python -m app models pull does it later)
#   --coral            the Coral Edge TPU runtime matched to the interpreter (constraints/edgetpu.ini), its udev rule
#   --coral-max        the same at the maximum clock: faster, and the USB Accelerator gets hot enough to burn
#   --coral-apt        also Coral's own apt repository (gasket-dkms for PCIe cards); its libedgetpu is never used
#   --service          run as a systemd service: user smartcam, the app in /opt/smartcam, /etc/smartcam/config.yaml,
#                      /var/lib/smartcam (models, snapshots), the unit enabled and started
#   --pipeline NAME    the pipeline whose models are fetched, and the service's (default detect: smartcam.service;
#                      another: smartcam@NAME.service); .venv/bin/python -m app models pull fetches the others
#   --uninstall        remove what the installer added; keeps /etc/smartcam and /var/lib/smartcam unless --purge
#   --purge            with --uninstall: also the configuration, the models and the snapshots
#   --dry-run          print every action without doing any
#   -h, --help         this text
# For testing the plan only (with --dry-run): SMARTCAM_PLATFORM_OVERRIDE=ID-CODENAME-ARCH stands in for the
#   detected platform and its Python, ID raspios|debian|ubuntu, e.g. raspios-bookworm-aarch64, debian-trixie-x86_64;
#   SMARTCAM_ROOT=DIR reads what is already installed (files, users and groups, dpkg's database, whether systemd
#   and udev run) from DIR instead of /, so the plan is the one for the machine DIR describes.
# PYTHON=/path/to/python3 picks the interpreter for .venv (default /usr/bin/python3; Raspberry Pi OS needs it).
set -euo pipefail
set -E
umask 022  # the service user reads what root installs; the one secret, /etc/smartcam/config.yaml, gets 0640

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/opt/smartcam               # where --service installs the app: the units' ExecStart points here
ETC_DIR=/etc/smartcam
STATE_DIR=/var/lib/smartcam
CACHE_DIR=/var/cache/smartcam
UNIT_DIR=/etc/systemd/system
UDEV_RULE=/etc/udev/rules.d/99-coral-edgetpu.rules
CORAL_LIST=/etc/apt/sources.list.d/coral-edgetpu.list
CORAL_KEYRING=/etc/apt/keyrings/coral-edgetpu.gpg
CORAL_PIN=/etc/apt/preferences.d/smartcam-libedgetpu
SERVICE_USER=smartcam

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

DEV=0 MODELS=pull MODELS_FROM="" CORAL="" CORAL_APT=0 SERVICE=0 PIPELINE=detect UNINSTALL=0 PURGE=0 DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --models-from) [ $# -ge 2 ] || { echo "install.sh: --models-from needs a folder" >&2; exit 2; }
                   MODELS_FROM=$2; shift ;;
    --no-models) MODELS=skip ;;
    --coral) CORAL=${CORAL:-std} ;;
    --coral-max) CORAL=max ;;
    --coral-apt) CORAL_APT=1 ;;
    --service) SERVICE=1 ;;
    --pipeline) [ $# -ge 2 ] || { echo "install.sh: --pipeline needs a name" >&2; exit 2; }
                PIPELINE=$2; shift ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see ./install.sh --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$DEV" = 1 ] && [ -z "$MODELS_FROM" ] && MODELS=skip
if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then
  echo "install.sh: --purge goes with --uninstall" >&2; exit 2
fi
if [ -n "${SMARTCAM_PLATFORM_OVERRIDE:-}" ] && [ "$DRY_RUN" = 0 ]; then
  echo "install.sh: SMARTCAM_PLATFORM_OVERRIDE only simulates a platform for --dry-run" >&2; exit 2
fi
ROOT=""
if [ -n "${SMARTCAM_ROOT:-}" ]; then
  [ "$DRY_RUN" = 1 ] || { echo "install.sh: SMARTCAM_ROOT only simulates a machine's state for --dry-run" >&2; exit 2; }
  [ -d "$SMARTCAM_ROOT" ] || { echo "install.sh: SMARTCAM_ROOT=$SMARTCAM_ROOT: no such folder" >&2; exit 2; }
  ROOT=$(cd "$SMARTCAM_ROOT" && pwd)
  [ "$ROOT" != / ] || ROOT=""
fi
if [ -n "$MODELS_FROM" ]; then
  [ -d "$MODELS_FROM" ] || { echo "install.sh: --models-from $MODELS_FROM: no such folder" >&2; exit 2; }
  MODELS_FROM=$(cd "$MODELS_FROM" && pwd)
fi
case "$PIPELINE" in
  *[!A-Za-z0-9_.-]*|"") echo "install.sh: --pipeline $PIPELINE: a pipeline name (pipelines/NAME.yaml)" >&2; exit 2 ;;
esac
[ -f "$HERE/pipelines/$PIPELINE.yaml" ] || { echo "install.sh: no pipeline $PIPELINE in pipelines/" >&2; exit 2; }
[ "$CORAL_APT" = 1 ] && [ -z "$CORAL" ] && CORAL=std
if [ "$PIPELINE" = detect ]; then UNIT=smartcam.service; else UNIT="smartcam@$PIPELINE.service"; fi

# --- output and actions ----------------------------------------------------------------------------------------

STEP="start" FIX="read the message above"
step() {  # step TITLE [WHAT TO DO IF IT FAILS]
  STEP=$1 FIX=${2:-"read the message above"}
  printf '==> %s\n' "$1"
}
note() { printf '    %s\n' "$*"; }
already() { printf '    already done: %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
fail() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
on_error() {
  local status=$?
  trap - ERR
  [ "$BASH_SUBSHELL" = 0 ] || exit "$status"  # said once, by the main shell
  printf '\ninstall.sh: step "%s" failed (exit %s).\n  what to do: %s\n  then run ./install.sh again with the same options: finished steps are skipped.\n' \
    "$STEP" "$status" "$FIX" >&2
  exit "$status"
}
trap on_error ERR

quote() {  # a command as a person would type it
  local out="" a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+="$a "; else out+="'${a//\'/\'\\\'\'}' "; fi
  done
  printf '%s' "${out% }"
}
run() {  # print a command, and run it unless --dry-run
  printf '    + %s\n' "$(quote "$@")"
  [ "$DRY_RUN" = 1 ] || "$@"
}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
as_root() {  # run a command that needs root (through sudo when not root)
  if [ -n "$SUDO" ] && [ "$DRY_RUN" = 0 ] && ! command -v sudo >/dev/null; then
    fail "this step needs root: run ./install.sh as root, or install sudo"
  fi
  run $SUDO "$@"
}
as_app() {  # a command on the app's tree: root's under /opt/smartcam (--service), the user's in the checkout
  if [ "$SERVICE" = 1 ]; then as_root "$@"; else run "$@"; fi
}
put_file() {  # put_file PATH MODE OWNER:GROUP < CONTENT: write the file only when it differs
  local path=$1 mode=$2 owner=$3 tmp lines
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$(at "$path")" ] && cmp -s "$tmp" "$(at "$path")" && [ "$(mode_owner "$path")" = "${mode#0} $owner" ]; then
    already "$path"
  else
    lines=$(wc -l < "$tmp")
    if [ "$lines" -le 8 ] || [ "$DRY_RUN" = 1 ]; then
      printf '    + write %s (mode %s, %s):\n' "$path" "$mode" "$owner"
      sed 's/^/        | /' "$tmp"
    else
      printf '    + write %s (mode %s, %s, %s lines)\n' "$path" "$mode" "$owner" "$lines"
    fi
    if [ "$DRY_RUN" = 0 ]; then $SUDO install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"; fi
  fi
  rm -f "$tmp"
}
install_file() {  # install_file SRC DST MODE: copy when it differs; returns 0 when it changed something
  if [ -f "$(at "$2")" ] && cmp -s "$1" "$(at "$2")"; then already "$2"; return 1; fi
  as_root install -D -m "$3" "$1" "$2"
}
dpkg_query() { dpkg-query ${ROOT:+"--admindir=$ROOT/var/lib/dpkg"} "$@"; }
# shellcheck disable=SC2016  # ${Status} and ${Version} are dpkg-query's format, not the shell's
installed_version() {  # the installed dpkg version of a package, or nothing
  { dpkg_query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null || true; } | awk '$3 == "installed" { print $4 }'
}
# shellcheck disable=SC2016
held() {  # held PACKAGE: apt-mark hold was done (dpkg's selection is "hold")
  { dpkg_query -W -f='${Status}\n' "$1" 2>/dev/null || true; } | grep -q '^hold '
}
APT_UPDATED=0
apt_install() {  # apt_install PACKAGE...: install the ones missing, without recommends
  local missing=() p
  for p in "$@"; do [ -n "$(installed_version "$p")" ] || missing+=("$p"); done
  if [ ${#missing[@]} = 0 ]; then already "apt packages $*"; return; fi
  command -v apt-get >/dev/null || fail "no apt-get: install ${missing[*]} with this system's package manager"
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -q; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
version_at_least() {  # version_at_least A B: version A is B or newer
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]
}
ini_get() {  # ini_get FILE SECTION KEY: a value from constraints/edgetpu.ini
  awk -v section="[$2]" -v key="$3" '
    /^[[:space:]]*[#;]/ { next }
    /^\[/ { inside = ($0 == section); next }
    inside && index($0, "=") { k = $0; sub(/[[:space:]]*=.*/, "", k); if (k == key) { v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); print v; exit } }
  ' "$1"
}
systemd_running() { [ -d "$ROOT/run/systemd/system" ]; }
udev_running() { [ -d "$ROOT/run/udev" ]; }
# what is installed: read from SMARTCAM_ROOT when it is set (--dry-run), else from this machine
at() {  # at PATH: where to look for a system path (the checkout itself is never under SMARTCAM_ROOT)
  case "$1" in "$HERE"|"$HERE"/*) printf '%s' "$1" ;; *) printf '%s%s' "$ROOT" "$1" ;; esac
}
has_group() {
  if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/group" 2>/dev/null; else getent group "$1" >/dev/null; fi
}
has_user() {
  if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/passwd" 2>/dev/null; else id "$1" >/dev/null 2>&1; fi
}
user_groups() {  # user_groups USER: its groups, one a line
  if [ -z "$ROOT" ]; then id -nG "$1" 2>/dev/null | tr ' ' '\n'; return 0; fi
  local gid
  gid=$(awk -F: -v u="$1" '$1 == u { print $4 }' "$ROOT/etc/passwd" 2>/dev/null)
  awk -F: -v u="$1" -v gid="$gid" '$3 == gid || index("," $4 ",", "," u ",") { print $1 }' "$ROOT/etc/group" 2>/dev/null
}
unit_enabled() {
  if [ -n "$ROOT" ]; then [ -L "$ROOT$UNIT_DIR/multi-user.target.wants/$1" ]
  else systemctl is-enabled --quiet "$1" 2>/dev/null
  fi
}
unit_active() {  # under SMARTCAM_ROOT no unit runs
  [ -z "$ROOT" ] && systemctl is-active --quiet "$1"
}
mode_owner() {  # mode_owner PATH: "MODE USER:GROUP", the names as this machine (or SMARTCAM_ROOT) has them
  local mode uid gid user group
  if [ -z "$ROOT" ]; then stat -c '%a %U:%G' "$1"; return; fi
  read -r mode uid gid < <(stat -c '%a %u %g' "$ROOT$1")
  user=$(awk -F: -v id="$uid" '$3 == id { print $1; exit }' "$ROOT/etc/passwd" 2>/dev/null)
  group=$(awk -F: -v id="$gid" '$3 == id { print $1; exit }' "$ROOT/etc/group" 2>/dev/null)
  printf '%s %s:%s\n' "$mode" "${user:-$uid}" "${group:-$gid}"
}
not_the_service_users() {  # not_the_service_users DIR: one path under DIR the service user does not own, if any
  local uid
  if [ -n "$ROOT" ]; then uid=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $3 }' "$ROOT/etc/passwd" 2>/dev/null)
  else uid=$(id -u "$SERVICE_USER" 2>/dev/null || true)
  fi
  if [ -z "$uid" ]; then [ ! -e "$(at "$1")" ] || echo "$1"; return 0; fi
  find "$(at "$1")" ! -uid "$uid" -print -quit 2>/dev/null || true
}

# --- the platform ----------------------------------------------------------------------------------------------

OS_ID="" OS_NAME="" CODENAME="" ARCH="" PI_MODEL="" PI_OS=0 SIMULATED_PYTHON=""
release_python() {  # the python3 a release ships, for SMARTCAM_PLATFORM_OVERRIDE
  case "$1" in
    focal) echo 3.8 ;; bullseye) echo 3.9 ;; bookworm) echo 3.11 ;; trixie|plucky|questing) echo 3.13 ;;
    jammy) echo 3.10 ;; noble|oracular) echo 3.12 ;;
    *) return 1 ;;
  esac
}
detect_platform() {
  if [ -n "${SMARTCAM_PLATFORM_OVERRIDE:-}" ]; then
    IFS=- read -r OS_ID CODENAME ARCH <<< "$SMARTCAM_PLATFORM_OVERRIDE"
    [ -n "$ARCH" ] || { echo "install.sh: SMARTCAM_PLATFORM_OVERRIDE=ID-CODENAME-ARCH, e.g. raspios-bookworm-aarch64" >&2; exit 2; }
    case "$OS_ID" in
      raspios) OS_NAME="Raspberry Pi OS ($CODENAME)" PI_OS=1 PI_MODEL="Raspberry Pi (simulated)" ;;
      debian|ubuntu) OS_NAME="$OS_ID ($CODENAME)" ;;
      *) echo "install.sh: SMARTCAM_PLATFORM_OVERRIDE: ID is raspios, debian or ubuntu" >&2; exit 2 ;;
    esac
    SIMULATED_PYTHON=$(release_python "$CODENAME") || {
      echo "install.sh: SMARTCAM_PLATFORM_OVERRIDE: no known Python for $CODENAME (bullseye, bookworm, trixie, jammy, noble, ...)" >&2
      exit 2
    }
    OS_NAME="$OS_NAME [simulated: SMARTCAM_PLATFORM_OVERRIDE]"
    return
  fi
  if [ -r /etc/os-release ]; then
    # shellcheck source=/dev/null
    eval "$(. /etc/os-release && printf 'OS_ID=%q OS_NAME=%q CODENAME=%q\n' "${ID:-linux}" \
      "${PRETTY_NAME:-${ID:-linux}}" "${VERSION_CODENAME:-${UBUNTU_CODENAME:-}}")"
  fi
  # the userland's architecture: a 32-bit Raspberry Pi OS on a 64-bit kernel says aarch64 in uname -m
  case "$(dpkg --print-architecture 2>/dev/null || true)" in
    amd64) ARCH=x86_64 ;; arm64) ARCH=aarch64 ;; armhf) ARCH=armv7l ;; armel) ARCH=armv6l ;; i386) ARCH=i686 ;;
    *) ARCH=$(uname -m) ;;
  esac
  if [ -r /proc/device-tree/model ] && grep -qa "Raspberry Pi" /proc/device-tree/model; then
    PI_MODEL=$(tr -d '\0' < /proc/device-tree/model)
    # Raspberry Pi OS is Debian plus the Raspberry Pi repository, where python3-picamera2 comes from
    if ls /etc/apt/sources.list.d/raspi.list /etc/apt/sources.list.d/raspi.sources >/dev/null 2>&1; then
      PI_OS=1 OS_NAME="Raspberry Pi OS ($CODENAME)"
    fi
  fi
}

choose_python() {
  if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
  elif [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
  else PY=python3
  fi
  if [ -n "$SIMULATED_PYTHON" ]; then
    PY_VERSION=$SIMULATED_PYTHON  # the simulated platform's python3, not this machine's
  else
    command -v "$PY" >/dev/null || fail "no $PY: ${SUDO:+sudo }apt-get install python3 python3-venv"
    PY_VERSION=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  fi
  version_at_least "$PY_VERSION" 3.10 \
    || fail "smartcam needs Python 3.10 or newer, $PY is $PY_VERSION: use Debian 12 / Raspberry Pi OS Bookworm or newer"
  if [ "$PI_OS" = 1 ] && [ "$PY" != /usr/bin/python3 ]; then
    warn "PYTHON=$PY: the venv sees apt's picamera2 only when made from /usr/bin/python3"
  fi
}

CONSTRAINTS="" SYSTEM_SITE=0
choose_constraints() {
  case "$ARCH" in
    x86_64|aarch64) ;;
    armv7l|armv6l)
      fail "$(sed -n 's/^# unsupported: //p' "$HERE/constraints/armv7l.txt") (see constraints/armv7l.txt; nothing was changed)" ;;
    *) fail "architecture $ARCH is not supported: LiteRT has wheels for x86_64 and aarch64 (nothing was changed)" ;;
  esac
  if [ "$PI_OS" = 1 ] && [ "$CODENAME" = bookworm ]; then CONSTRAINTS=constraints/bookworm-pi.txt
  elif [ "$CODENAME" = trixie ]; then CONSTRAINTS=constraints/trixie.txt
  else CONSTRAINTS=constraints/default.txt
  fi
  SYSTEM_SITE=$PI_OS
}

EDGETPU_INI="$HERE/constraints/edgetpu.ini"
EDGETPU_VERSION="" EDGETPU_PACKAGE="" EDGETPU_FILE="" EDGETPU_URL="" EDGETPU_SHA256="" INTERPRETER_REQ=""
choose_edgetpu() {  # the matched pair for this platform, or a refusal that says why
  local dist arch max_python
  EDGETPU_VERSION=$(ini_get "$EDGETPU_INI" libedgetpu version)
  EDGETPU_PACKAGE="libedgetpu1-$CORAL"
  INTERPRETER_REQ=$(ini_get "$EDGETPU_INI" interpreter requirement)
  max_python=$(ini_get "$EDGETPU_INI" interpreter max_python)
  if ! version_at_least "$max_python" "$PY_VERSION"; then
    fail "--coral: no matched Edge TPU pair for Python $PY_VERSION yet: libedgetpu $EDGETPU_VERSION goes with $INTERPRETER_REQ, which has wheels up to Python $max_python (constraints/edgetpu.ini). Use Raspberry Pi OS Bookworm (64-bit) for the Coral, or install without --coral (CPU). Nothing was changed."
  fi
  case "$OS_ID-$CODENAME" in
    *-bookworm) dist=bookworm ;;
    ubuntu-jammy) dist=ubuntu22.04 ;;
    ubuntu-noble) dist=ubuntu24.04 ;;
    *) fail "--coral: no libedgetpu $EDGETPU_VERSION build for $OS_NAME (builds: Debian/Raspberry Pi OS bookworm, Ubuntu 22.04, 24.04). Nothing was changed." ;;
  esac
  case "$ARCH" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
  EDGETPU_URL=$(ini_get "$EDGETPU_INI" libedgetpu url)
  EDGETPU_URL=${EDGETPU_URL//\{package\}/$EDGETPU_PACKAGE}
  EDGETPU_URL=${EDGETPU_URL//\{dist\}/$dist}
  EDGETPU_URL=${EDGETPU_URL//\{arch\}/$arch}
  EDGETPU_FILE=${EDGETPU_URL##*/}
  EDGETPU_SHA256=$(ini_get "$EDGETPU_INI" sha256 "$EDGETPU_FILE")
}

# --- the steps -------------------------------------------------------------------------------------------------

step_platform() {
  step "platform"
  detect_platform
  choose_python
  [ "$UNINSTALL" = 1 ] || choose_constraints
  note "$OS_NAME, $ARCH${PI_MODEL:+, $PI_MODEL}, Python $PY_VERSION ($PY)"
  if [ "$UNINSTALL" = 0 ]; then
    if [ "$SYSTEM_SITE" = 1 ]; then
      note "venv with --system-site-packages (apt's python3-picamera2), dependencies pinned by $CONSTRAINTS"
    else
      note "plain venv, dependencies pinned by $CONSTRAINTS"
    fi
    [ "$PI_MODEL" != "" ] && [ "$PI_OS" = 0 ] && warn "a Raspberry Pi without Raspberry Pi OS: no picamera2 (USB cameras and streams work)"
    if [ -n "$CORAL" ]; then
      choose_edgetpu
      note "Coral: $EDGETPU_PACKAGE $EDGETPU_VERSION (TensorFlow $(ini_get "$EDGETPU_INI" libedgetpu tensorflow)) with $INTERPRETER_REQ"
    fi
  fi
  return 0
}

step_system_packages() {
  local packages=()
  if [ "$PI_OS" = 1 ]; then packages+=(python3-venv python3-picamera2)
  elif [ "$PY" = /usr/bin/python3 ] && command -v dpkg-query >/dev/null; then packages+=(python3-venv)
  fi
  [ -n "$CORAL" ] && packages+=(ca-certificates curl)
  [ "$CORAL_APT" = 1 ] && packages+=(gnupg)
  # --dev: the real services the tests use (broker, browser, unit checker, certificates, the stand-in libedgetpu)
  [ "$DEV" = 1 ] && packages+=(mosquitto chromium systemd openssl gcc libc6-dev)
  [ ${#packages[@]} = 0 ] && return
  step "system packages: ${packages[*]}" "check the network and apt (${SUDO:+sudo }apt-get update), then install them: ${SUDO:+sudo }apt-get install ${packages[*]}"
  apt_install "${packages[@]}"
}

step_coral_runtime() {
  local cached="$CACHE_DIR/$EDGETPU_FILE" installed other
  step "Edge TPU runtime: $EDGETPU_PACKAGE $EDGETPU_VERSION, matched with $INTERPRETER_REQ (constraints/edgetpu.ini)" \
    "check the network, or download $EDGETPU_URL yourself into $CACHE_DIR/"
  if [ "$CORAL" = max ]; then
    warn "--coral-max runs the Edge TPU at its maximum clock: the USB Accelerator can get hot enough to burn" \
         "and throttles or fails in a warm enclosure; --coral (standard clock) is the safe choice"
  fi
  installed=$(installed_version "$EDGETPU_PACKAGE")
  if [ "$installed" = "$EDGETPU_VERSION" ]; then
    already "$EDGETPU_PACKAGE $installed installed"
  else
    [ -n "$installed" ] && note "$EDGETPU_PACKAGE $installed is installed: replacing it with the matched $EDGETPU_VERSION"
    for other in libedgetpu1-std libedgetpu1-max; do
      [ "$other" != "$EDGETPU_PACKAGE" ] && [ -n "$(installed_version "$other")" ] && \
        note "$other $(installed_version "$other") is installed: apt replaces it (the two conflict)"
    done
    if [ -f "$(at "$cached")" ] \
       && { [ -z "$EDGETPU_SHA256" ] || [ "$(sha256sum < "$(at "$cached")" | cut -d' ' -f1)" = "$EDGETPU_SHA256" ]; }; then
      already "downloaded $cached"
    else
      as_root install -d -m 0755 "$CACHE_DIR"
      as_root curl -fsSL --retry 3 -o "$cached.part" "$EDGETPU_URL"
      if [ -n "$EDGETPU_SHA256" ]; then
        note "checking sha256 $EDGETPU_SHA256 (constraints/edgetpu.ini)"
        if [ "$DRY_RUN" = 0 ] && [ "$(sha256sum "$cached.part" | cut -d' ' -f1)" != "$EDGETPU_SHA256" ]; then
          $SUDO rm -f "$cached.part"
          FIX="the download of $EDGETPU_URL does not match its pinned checksum: do not install it; report it"
          false
        fi
      else
        warn "no pinned sha256 for $EDGETPU_FILE in constraints/edgetpu.ini: trusted on HTTPS alone"
        [ "$DRY_RUN" = 0 ] && note "its sha256: $(sha256sum "$cached.part" | cut -d' ' -f1)"
      fi
      as_root mv "$cached.part" "$cached"
    fi
    if [ "$CORAL" = max ]; then
      note "preseeding the EULA libedgetpu1-max asks for, so the install does not stop at a prompt"
      printf '    + %s\n' "echo 'libedgetpu1-max libedgetpu/accepted-eula boolean true' | $SUDO${SUDO:+ }debconf-set-selections"
      [ "$DRY_RUN" = 1 ] || echo 'libedgetpu1-max libedgetpu/accepted-eula boolean true' | $SUDO debconf-set-selections
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades --allow-change-held-packages "$cached"
  fi
  # apt upgrades must not swap in another build (Coral's repository serves the crashing 16.0)
  if held "$EDGETPU_PACKAGE"; then
    already "$EDGETPU_PACKAGE held at $EDGETPU_VERSION"
  else
    as_root apt-mark hold "$EDGETPU_PACKAGE"
  fi

  step "udev rule: the Coral for the plugdev group ($UDEV_RULE)"
  if install_file "$HERE/systemd/99-coral-edgetpu.rules" "$UDEV_RULE" 0644; then
    if udev_running; then
      as_root udevadm control --reload-rules
      as_root udevadm trigger --subsystem-match=usb --subsystem-match=apex --action=add
    else
      note "udev is not running here: the rule applies from the next boot"
    fi
  fi
  local me=${SUDO_USER:-$(id -un)}
  if [ "$me" != root ] && ! user_groups "$me" | grep -qx plugdev; then
    as_root usermod -a -G plugdev "$me"
    note "$me was added to plugdev: log out and in again to use the Coral from your own shell"
  fi
}

step_coral_apt() {
  step "Coral's apt repository, signed-by $CORAL_KEYRING (gasket-dkms for PCIe cards)" \
    "check the network; the key is at https://packages.cloud.google.com/apt/doc/apt-key.gpg"
  if [ -s "$(at "$CORAL_KEYRING")" ]; then
    already "$CORAL_KEYRING"
  else
    as_root install -d -m 0755 /etc/apt/keyrings
    printf '    + %s\n' "curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | $SUDO${SUDO:+ }gpg --dearmor -o $CORAL_KEYRING"
    if [ "$DRY_RUN" = 0 ]; then
      curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | $SUDO gpg --dearmor --yes -o "$CORAL_KEYRING"
      $SUDO chmod 0644 "$CORAL_KEYRING"
    fi
  fi
  put_file "$CORAL_LIST" 0644 root:root <<EOF
deb [signed-by=$CORAL_KEYRING] https://packages.cloud.google.com/apt coral-edgetpu-stable main
EOF
  put_file "$CORAL_PIN" 0644 root:root <<EOF
Explanation: smartcam: libedgetpu is the build matched to the interpreter (constraints/edgetpu.ini), never
Explanation: Coral's 16.0, which crashes with TFLite 2.12 and later
Package: libedgetpu1-std libedgetpu1-max libedgetpu-dev
Pin: origin "packages.cloud.google.com"
Pin-Priority: -1
EOF
  as_root apt-get update -q
  note "python3-pycoral from this repository is optional and needs Python 3.9 or older; never pip install pycoral"
  note "(the PyPI project of that name is unrelated)"
}

sync_tree() {  # copy the project's files into $PREFIX, only those that differ; drop files it no longer has
  local rel changed=() stale=() listed
  step "application files in $PREFIX" "check that $PREFIX is writable by root"
  listed=$(mktemp)
  if command -v git >/dev/null && git -C "$HERE" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$HERE" ls-files -co --exclude-standard
  else
    (cd "$HERE" && find . -type f | sed 's|^\./||' \
      | grep -Ev '^(\.venv|\.git|build|\.pytest_cache|models)/|(^|/)__pycache__/|\.pyc$|\.egg-info/'; echo models/manifest.yaml)
  fi | sort -u > "$listed"
  while IFS= read -r rel; do
    [ -f "$HERE/$rel" ] || continue
    cmp -s "$HERE/$rel" "$(at "$PREFIX/$rel")" 2>/dev/null || changed+=("$rel")
  done < "$listed"
  if [ -d "$(at "$PREFIX")" ]; then
    while IFS= read -r rel; do
      grep -qxF "$rel" "$listed" || stale+=("$rel")
    done < <(cd "$(at "$PREFIX")" && find . -type f | sed 's|^\./||' \
      | grep -Ev '^(\.venv|models)/|(^|/)__pycache__/|\.pyc$|\.egg-info/' | sort)
  fi
  rm -f "$listed"
  if [ ${#changed[@]} = 0 ] && [ ${#stale[@]} = 0 ]; then
    already "$PREFIX has this checkout's files"
    return
  fi
  APP_CHANGED=1
  note "copying ${#changed[@]} file(s) from $HERE, removing ${#stale[@]} it no longer has"
  printf '    + install -D %s %s/...\n' "$(printf '%s ' "${changed[@]:0:6}")$([ ${#changed[@]} -gt 6 ] && echo "(+$((${#changed[@]} - 6)) more)")" "$PREFIX"
  if [ "$DRY_RUN" = 0 ]; then
    for rel in "${changed[@]}"; do
      $SUDO install -D -m "$([ -x "$HERE/$rel" ] && echo 0755 || echo 0644)" "$HERE/$rel" "$PREFIX/$rel"
    done
  fi
  for rel in "${stale[@]}"; do as_root rm -f "$PREFIX/$rel"; done
}

step_venv() {
  local venv="$APP_DIR/.venv" cfg want flag=()
  step "virtual environment $venv" "${SUDO:+sudo }apt-get install python3-venv (or PYTHON=/path/to/python3 ./install.sh)"
  want=false
  if [ "$SYSTEM_SITE" = 1 ]; then want=true flag=(--system-site-packages); fi
  cfg=$(at "$venv/pyvenv.cfg")
  if [ -x "$(at "$venv/bin/python")" ] && "$(at "$venv/bin/python")" -c '' 2>/dev/null && [ -f "$cfg" ]; then
    if grep -qx "include-system-site-packages = $want" "$cfg"; then
      already "$venv ($(sed -n 's/^version[_a-z]* = //p' "$cfg" | head -n1), system site packages: $want)"
      return
    fi
    note "$venv exists with include-system-site-packages != $want: setting it"
  fi
  as_app "$PY" -m venv "${flag[@]}" "$venv"
}

pip_stamp() {  # what the pip step installed from: when unchanged (and the app imports), it is already done
  printf 'python %s\nconstraints %s %s\npyproject %s\nextras %s\nalso %s\n' "$PY_VERSION" "$CONSTRAINTS" \
    "$(sha256sum < "$HERE/$CONSTRAINTS" | cut -d' ' -f1)" "$(sha256sum < "$HERE/pyproject.toml" | cut -d' ' -f1)" \
    "$1" "$INTERPRETER_REQ"
}

step_pip() {
  local venv="$APP_DIR/.venv" extras="" stamp req=()
  [ "$DEV" = 1 ] && extras="[dev]"
  [ -n "$INTERPRETER_REQ" ] && req=("$INTERPRETER_REQ")
  step "smartcam and its dependencies into $venv (pip -c $CONSTRAINTS${INTERPRETER_REQ:+ + $INTERPRETER_REQ})" \
    "check the network (pip reads PyPI); pip's message above names the package that failed"
  stamp=$(pip_stamp "$extras")
  if [ -f "$(at "$venv/.smartcam-installed")" ] && [ "$(cat "$(at "$venv/.smartcam-installed")")" = "$stamp" ] \
     && (cd / && "$(at "$venv/bin/python")" -c 'import app.model.runtime as r; r.interpreter_api()') >/dev/null 2>&1; then
    already "installed from $CONSTRAINTS${extras:+ with $extras}, pyproject.toml unchanged"
    return
  fi
  as_app "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    -c "$APP_DIR/$CONSTRAINTS" -e "$APP_DIR$extras" "${req[@]}"
  printf '    + write %s\n' "$venv/.smartcam-installed"
  if [ "$DRY_RUN" = 0 ]; then printf '%s\n' "$stamp" | $([ "$SERVICE" = 1 ] && echo "$SUDO") tee "$venv/.smartcam-installed" >/dev/null; fi
  APP_CHANGED=1
}

step_check() {
  local py="$APP_DIR/.venv/bin/python"
  step "check: the app imports and finds its TFLite runtime" "run ./install.sh again; if it fails the same way, remove $APP_DIR/.venv"
  if [ "$DRY_RUN" = 1 ]; then
    printf '    + %s\n' "$py -c 'from app.model.runtime import interpreter_api; print(interpreter_api().package)'"
    return
  fi
  (cd / && "$py" -c "from app.model.runtime import interpreter_api as api; import importlib.metadata as m; p = api().package; print('    runtime:', p, m.version(p))")
  if [ "$PI_OS" = 1 ]; then
    if (cd / && "$py" -c 'import picamera2') 2>/dev/null; then note "picamera2: imports"
    else warn "picamera2 does not import in $APP_DIR/.venv: the Pi camera will not work (USB cameras do): $(cd / && "$py" -c 'import picamera2' 2>&1 | tail -n1)"
    fi
  fi
  if [ -n "$CORAL" ]; then
    (cd / && "$py" -m app devices) | sed 's/^/    /' || warn "python -m app devices failed (above)"
  fi
}

in_manifest() {  # in_manifest NAME: models/manifest.yaml lists a model by that name
  awk -v key="  $1:" 'index($0, key) == 1 { found = 1 } END { exit !found }' "$HERE/models/manifest.yaml"
}

pipeline_models() {  # pipeline_models [SUFFIX]: the named models (NAME, or NAME_edgetpu) --pipeline's file uses
  local model found=()
  while IFS= read -r model; do
    if in_manifest "$model${1:-}"; then found+=("$model${1:-}"); fi
  done < <(sed -n 's/.*[{ ]model: *\([A-Za-z0-9_.-]*\).*/\1/p' "$HERE/pipelines/$PIPELINE.yaml" | sort -u)
  echo "${found[@]}"
}

pull_command() {  # the models pull that fills the models folder the app (or the service) reads
  printf '%s/.venv/bin/python -m app models pull' "$APP_DIR"
  if [ "$SERVICE" = 1 ]; then printf ' --config %s/config.yaml' "$ETC_DIR"; fi
}

models_pull() {  # models_pull [NAME...]: pull them; a --models-from folder that lacks files is told which
  local py="$APP_DIR/.venv/bin/python" config=() log status=0 missing
  [ "$SERVICE" = 1 ] && config=(--config "$ETC_DIR/config.yaml")
  if [ -z "$MODELS_FROM" ]; then
    as_app "$py" -m app models pull "$@" "${config[@]}"
    return
  fi
  log=$(mktemp)
  as_app "$py" -m app models pull "$@" "${config[@]}" --from "$MODELS_FROM" 2>"$log" || status=$?
  cat "$log" >&2
  missing=$(awk -v tail=": not in $MODELS_FROM" 'index($0, "error: ") == 1 && substr($0, length($0) - length(tail) + 1) == tail {
      print substr($0, 8, length($0) - 7 - length(tail)) }' "$log" | paste -sd' ')
  rm -f "$log"
  [ "$status" = 0 ] && return 0
  if [ -n "$missing" ]; then
    FIX="$MODELS_FROM has no $missing: copy the missing file(s) into it (models/manifest.yaml says where each comes from), or install where there is internet without --models-from"
  fi
  return "$status"
}

step_models() {  # only the models of --pipeline: a --models-from folder needs no other pipeline's files
  local models extra=""
  models=$(pipeline_models)
  [ -n "$CORAL" ] && extra=$(pipeline_models _edgetpu)
  if [ "$MODELS" = skip ]; then
    step "models: skipped ($(pull_command) fetches them)"
    return
  fi
  if [ -z "$models$extra" ]; then
    step "models: pipeline $PIPELINE names none of models/manifest.yaml (its model is a file of its own)"
    return
  fi
  if [ -n "$MODELS_FROM" ]; then
    step "models of pipeline $PIPELINE from $MODELS_FROM: $models${extra:+ $extra}" "the app's lines above say which file failed and why"
  else
    step "models of pipeline $PIPELINE: $models${extra:+ $extra}" "offline, use ./install.sh --models-from DIR (a folder with the model files)"
  fi
  # shellcheck disable=SC2086
  models_pull $models $extra || models_failed
  if [ "$SERVICE" = 1 ]; then own_state; fi
}

models_failed() {  # the fetch failed (its status is kept): with --service, the units are installed all the same
  local status=$?
  [ "$SERVICE" = 1 ] && FIX="$FIX. The units are installed; $UNIT is enabled and started once its models are here"
  return "$status"
}

step_user() {
  local group missing=()
  step "service user $SERVICE_USER in groups video and plugdev" "${SUDO:+sudo }useradd --system $SERVICE_USER (see the message above)"
  for group in video plugdev; do
    if has_group "$group"; then already "group $group"; else as_root groupadd --system "$group"; fi
  done
  if has_user "$SERVICE_USER"; then
    for group in video plugdev; do
      user_groups "$SERVICE_USER" | grep -qx "$group" || missing+=("$group")
    done
    if [ ${#missing[@]} = 0 ]; then already "user $SERVICE_USER ($(user_groups "$SERVICE_USER" | paste -sd' '))"
    else as_root usermod -a -G "$(IFS=,; echo "${missing[*]}")" "$SERVICE_USER"
    fi
  else
    as_root useradd --system --user-group --groups video,plugdev --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "smartcam camera service" "$SERVICE_USER"
  fi
}

service_config() {  # config.yaml with the service's state paths (models, snapshots) under /var/lib/smartcam
  printf '# %s/config.yaml: made by install.sh --service from %s/config.yaml. Yours to edit: install.sh keeps it.\n' "$ETC_DIR" "$PREFIX"
  printf '# Relative paths are relative to this file, which the service cannot write: state goes to %s.\n' "$STATE_DIR"
  awk -v state="$STATE_DIR" '
    /^[A-Za-z_][A-Za-z0-9_]*:/ { section = $0; sub(/:.*/, "", section) }
    (section == "models" || section == "snapshots") && /^  dir:/ { next }
    { print }
    /^models:[[:space:]]*(#.*)?$/ { print "  dir: " state "/models"; m = 1 }
    /^snapshots:[[:space:]]*(#.*)?$/ { print "  dir: " state "/snapshots"; s = 1 }
    END {
      if (!m) print "models:\n  dir: " state "/models"
      if (!s) print "snapshots:\n  dir: " state "/snapshots"
    }' "$1"
}

step_config() {
  step "configuration $ETC_DIR/config.yaml" "fix $ETC_DIR/config.yaml ($PREFIX/.venv/bin/python -m app validate --config $ETC_DIR/config.yaml)"
  if [ -f "$(at "$ETC_DIR/config.yaml")" ]; then
    already "$ETC_DIR/config.yaml exists: kept as it is"
    # kept from an earlier install whose user was removed: make it readable by this one
    [ "$(mode_owner "$ETC_DIR/config.yaml" | cut -d' ' -f2)" = "root:$SERVICE_USER" ] || \
      as_root chown root:"$SERVICE_USER" "$ETC_DIR/config.yaml"
    [ "$(mode_owner "$ETC_DIR/config.yaml" | cut -d' ' -f1)" = 640 ] || as_root chmod 0640 "$ETC_DIR/config.yaml"
  else
    service_config "$HERE/config.yaml" | put_file "$ETC_DIR/config.yaml" 0640 "root:$SERVICE_USER"
    note "models.dir: $STATE_DIR/models, snapshots.dir: $STATE_DIR/snapshots"
  fi
  if [ "$DRY_RUN" = 0 ]; then
    (cd / && "$APP_DIR/.venv/bin/python" -m app validate --config "$ETC_DIR/config.yaml" --pipeline "$PIPELINE") | sed 's/^/    validate: /'
  fi
  step "state directory $STATE_DIR (models, snapshots)"
  if [ -d "$(at "$STATE_DIR/models")" ] && [ -z "$(not_the_service_users "$STATE_DIR")" ]; then
    already "$STATE_DIR"
  else
    as_root install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR" "$STATE_DIR/models"
    own_state
  fi
}

own_state() {  # everything under /var/lib/smartcam belongs to the service user (models pulled as root, old uids)
  if [ "$DRY_RUN" = 1 ] || [ -n "$(not_the_service_users "$STATE_DIR")" ]; then
    as_root chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
  fi
}

step_units() {  # the one unit file, smartcam@.service, and smartcam.service made from it (pipeline detect)
  local made
  step "systemd units in $UNIT_DIR"
  install_file "$HERE/systemd/smartcam@.service" "$UNIT_DIR/smartcam@.service" 0644 && UNITS_CHANGED=1
  made=$(mktemp -d)
  "$HERE/systemd/default-unit.sh" > "$made/smartcam.service"
  install_file "$made/smartcam.service" "$UNIT_DIR/smartcam.service" 0644 && UNITS_CHANGED=1
  rm -rf "$made"
}

step_service() {  # after the models: a service started without them would stop at once (exit 2, not restarted)
  if ! systemd_running; then
    step "service $UNIT: not enabled or started, systemd is not running here"
    note "systemd is not PID 1 here (PID 1: $(cat "$ROOT/proc/1/comm" 2>/dev/null || echo unknown)): a container or a chroot?"
    note "the units are installed; where systemd runs: systemctl enable --now $UNIT"
    return
  fi
  step "service $UNIT: enabled and started" "journalctl -u ${UNIT%.service} -n 50 says why it did not start"
  [ "$UNITS_CHANGED" = 1 ] && as_root systemctl daemon-reload
  if unit_enabled "$UNIT"; then already "$UNIT enabled"
  else as_root systemctl enable "$UNIT"
  fi
  if unit_active "$UNIT"; then
    if [ "$APP_CHANGED" = 1 ] || [ "$UNITS_CHANGED" = 1 ]; then as_root systemctl restart --no-block "$UNIT"
    else already "$UNIT running"
    fi
  else
    as_root systemctl start --no-block "$UNIT"
  fi
  note "it reports READY after its first processed frame: systemctl status ${UNIT%.service}"
}

# --- uninstall -------------------------------------------------------------------------------------------------

remove() {  # remove PATH...: rm -rf each that exists, say so for each that does not
  local path
  for path in "$@"; do
    if [ -e "$(at "$path")" ] || [ -L "$(at "$path")" ]; then as_root rm -rf "$path"; else note "already absent: $path"; fi
  done
}

uninstall() {
  local unit units=() version
  step "service: stopped and disabled"
  for unit in "$ROOT$UNIT_DIR"/multi-user.target.wants/smartcam.service "$ROOT$UNIT_DIR"/multi-user.target.wants/smartcam@*.service; do
    [ -L "$unit" ] && units+=("${unit##*/}")
  done
  if systemd_running; then
    as_root systemctl disable --now smartcam.service 'smartcam@*.service' "${units[@]}" 2>/dev/null || true
  else
    note "systemd is not running as PID 1 here: removing the enablement links"
    remove "${units[@]/#/$UNIT_DIR/multi-user.target.wants/}"
  fi
  step "systemd units"
  remove "$UNIT_DIR/smartcam.service" "$UNIT_DIR/smartcam@.service"
  systemd_running && as_root systemctl daemon-reload
  step "Coral: udev rule, Edge TPU runtime, apt repository"
  remove "$UDEV_RULE"
  udev_running && as_root udevadm control --reload-rules
  version=$(ini_get "$EDGETPU_INI" libedgetpu version)
  for unit in libedgetpu1-std libedgetpu1-max; do
    if [ "$(installed_version "$unit")" = "$version" ]; then
      as_root apt-mark unhold "$unit"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$unit"
    else
      note "already absent: $unit $version"
    fi
  done
  remove "$CORAL_LIST" "$CORAL_PIN" "$CORAL_KEYRING" "$CACHE_DIR"
  step "application"
  if [ "$HERE" = "$PREFIX" ]; then remove "$PREFIX/.venv"; else remove "$PREFIX"; fi
  remove "$HERE/.venv"
  step "service user $SERVICE_USER"
  if has_user "$SERVICE_USER"; then as_root userdel "$SERVICE_USER"; else note "already absent: user $SERVICE_USER"; fi
  step "configuration and data"
  if [ "$PURGE" = 1 ]; then
    remove "$ETC_DIR" "$STATE_DIR"
    local models
    models=$(find "$HERE/models" -maxdepth 1 -type f ! -name manifest.yaml 2>/dev/null | sort)
    if [ -n "$models" ]; then
      # shellcheck disable=SC2086
      run rm -f $models
    else
      note "already absent: downloaded models in $HERE/models"
    fi
  else
    note "kept $ETC_DIR (your configuration), $STATE_DIR (models, snapshots) and $HERE/models: --purge removes them"
  fi
  note "kept the apt packages python3-venv and python3-picamera2 (other programs use them)"
}

# --- main ------------------------------------------------------------------------------------------------------

[ "$DRY_RUN" = 1 ] && echo "install.sh: dry run: printing every action, changing nothing"
APP_DIR=$HERE APP_CHANGED=0 UNITS_CHANGED=0 PY="" PY_VERSION=""
step_platform
if [ "$UNINSTALL" = 1 ]; then
  uninstall
  if [ "$DRY_RUN" = 1 ]; then echo "dry run done: nothing was changed"; else echo "uninstalled"; fi
  exit 0
fi
[ "$SERVICE" = 1 ] && APP_DIR=$PREFIX
step_system_packages
[ "$CORAL_APT" = 1 ] && step_coral_apt
[ -n "$CORAL" ] && step_coral_runtime
if [ "$SERVICE" = 1 ]; then
  step_user
  [ "$HERE" != "$PREFIX" ] && sync_tree
fi
step_venv
step_pip
step_check
if [ "$SERVICE" = 1 ]; then
  step_config
  step_units
  step_models
  step_service
else
  step_models
fi

outcome() {  # the last line: what there is now, and how to use it
  if [ "$SERVICE" = 0 ]; then
    echo "done: $APP_DIR/.venv/bin/python -m app --pipeline $PIPELINE"
  elif systemd_running; then
    echo "done: the service $UNIT is started from $PREFIX (systemctl status ${UNIT%.service} · journalctl -u ${UNIT%.service} -f)"
  else
    echo "done: installed $PREFIX, $ETC_DIR/config.yaml and the units in $UNIT_DIR; systemd is not running here," \
      "so $UNIT was neither enabled nor started (where systemd runs: systemctl enable --now $UNIT)"
  fi
  if [ "$SERVICE" = 1 ] && [ "$MODELS" = skip ]; then echo "  models: $(pull_command)"; fi
}

if [ "$DRY_RUN" = 1 ]; then
  echo "dry run done: nothing was changed; the install would end:"
  outcome | sed 's/^/  /'
else
  outcome
fi

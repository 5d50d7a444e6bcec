#!/usr/bin/env bash
# Set up speechedge in ./.venv on a fresh Debian/Ubuntu machine with Python 3.11, then run a job.
#
#   bash setup.sh quickstart   # the main job: `speechedge quickstart` on synthesized data
#   bash setup.sh test         # the test suite (what CI runs); also builds .venv-device (see below)
#   bash setup.sh device       # only .venv-device: numpy<2 + tflite-runtime + numba + soundfile (runtime check)
#   bash setup.sh              # set up only
#
# Re-running is cheap: the install is skipped while pyproject.toml and constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

apt_install() {  # only what is missing, only when we can (root); otherwise say what to install
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install the Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  fi
}

if command -v dpkg >/dev/null; then
  # libportaudio2: the microphone path (sounddevice); python3-venv: Debian's python3 lacks venv without it;
  # g++: the test that compiles the firmware header --target mcu writes; flite: CMU Flite, the speech engine
  # no model trains on (the unseen-engine test sets)
  pkgs=(libportaudio2 g++ flite)
  "$PY" -c "import ensurepip, venv" 2>/dev/null || pkgs+=(python3-venv)
  apt_install "${pkgs[@]}"
fi

stamp="$VENV/.speechedge-installed"
want=$(cat pyproject.toml constraints.txt | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[train,data,demo,export,dev]"
  echo "$want" > "$stamp"
fi

device_env() {  # .venv-device: numpy<2 + tflite-runtime + numba + soundfile, speechedge without its deps
  local dv=.venv-device dstamp=.venv-device/.speechedge-installed
  local dwant
  dwant=$(cat requirements-device.txt pyproject.toml | sha1sum | cut -d' ' -f1)
  if [ ! -f "$dstamp" ] || [ "$(cat "$dstamp")" != "$dwant" ]; then
    [ -x "$dv/bin/python" ] || "$PY" -m venv "$dv"
    "$dv/bin/python" -m pip install -q --upgrade pip
    "$dv/bin/python" -m pip install -q -r requirements-device.txt
    "$dv/bin/python" -m pip install -q --no-deps -e .
    echo "$dwant" > "$dstamp"
  fi
}

case "${1:-}" in
  quickstart) shift; exec "$VENV/bin/speechedge" quickstart "$@" ;;
  test) shift; device_env; exec "$VENV/bin/python" -m pytest "$@" ;;
  device) device_env; echo "setup: device environment ready in .venv-device" ;;
  "") echo "setup: ready; activate with: source $VENV/bin/activate" ;;
  *) echo "usage: bash setup.sh [quickstart|test|device] [args...]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Makes sure everything the dev stack and the tests need is installed: node_modules, the built
# `annex` CLI, Java (for DynamoDB Local) and a project-local Python venv with moto. Idempotent and
# quick when nothing is missing; prints one line per install step it actually runs and the step's
# output only if it fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

requirements=scripts/requirements.txt
venv=.venv
stamp="$venv/.requirements.stamp"

step() {
  local description=$1
  shift
  echo "ensure-deps: $description" >&2
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "ensure-deps: failed: $description" >&2
    exit 1
  fi
  rm -f "$log"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    echo "ensure-deps: need root to run: $*" >&2
    return 1
  fi
}

apt_install() {
  # Slim Debian images lack the man directory that the JRE's postinst links into.
  as_root mkdir -p /usr/share/man/man1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# npm writes node_modules/.package-lock.json on every install; it is older than the lockfile
# when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci" npm ci --no-audit --no-fund
fi

# The `annex` command runs cli/dist (npm ci builds it through `prepare`): rebuild it when it is
# missing or older than its sources, so every `npx annex` line works after `npm run dev` or `npm test`.
cli_binary=cli/dist/annex.js
if [ ! -f "$cli_binary" ] || [ -n "$(find cli/src cli/scripts cli/package.json -newer "$cli_binary" -print -quit)" ]; then
  step "building the annex CLI (cli/dist)" npm run build
fi

if ! command -v java >/dev/null 2>&1; then
  step "installing Java (openjdk-17-jre-headless) for DynamoDB Local" apt_install openjdk-17-jre-headless
fi

if ! command -v shellcheck >/dev/null 2>&1; then
  step "installing shellcheck for the image script tests" apt_install shellcheck
fi

if ! command -v g++ >/dev/null 2>&1 && ! command -v c++ >/dev/null 2>&1; then
  # test/integration/idtokens-htcondor.test.ts links a few lines against HTCondor's libcondor_utils.
  step "installing g++ for the IDTOKENS cross-check with HTCondor's library" apt_install g++
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  step "installing python3-venv for moto" apt_install python3 python3-venv
fi

if [ -d "$venv" ] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  # A venv whose interpreter moved or vanished cannot be repaired in place.
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  step "creating Python venv $venv" python3 -m venv "$venv"
fi
if [ ! -x "$venv/bin/moto_server" ] || [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ]; then
  step "pip install -r $requirements" \
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements"
  touch "$stamp"
fi
# schemathesis, the API fuzzer (test/integration/schemathesis.test.ts): a venv of its own, as its
# dependencies' pins are not moto's.
st_requirements=scripts/requirements-schemathesis.txt
st_venv=.venv-schemathesis
st_stamp="$st_venv/.requirements.stamp"
if [ -d "$st_venv" ] && ! "$st_venv/bin/python" -c '' >/dev/null 2>&1; then
  rm -rf "$st_venv"
fi
if [ ! -x "$st_venv/bin/schemathesis" ] || [ ! -f "$st_stamp" ] || [ "$st_requirements" -nt "$st_stamp" ]; then
  [ -x "$st_venv/bin/python" ] || step "creating Python venv $st_venv" python3 -m venv "$st_venv"
  step "pip install -r $st_requirements" \
    "$st_venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$st_requirements"
  touch "$st_stamp"
fi

#!/usr/bin/env bash
# Installs annex's instance side into an image root: run it in a Packer shell provisioner (root
# /), or against a mounted image or chroot (root DIR). Idempotent.
#
#   image/install.sh [--api-url URL] [--no-enable] [--strict] [ROOT]
#
#   --api-url URL  write ANNEX_API_URL=URL to ROOT/etc/annex/annex.env (not a secret). Without it
#                  an existing annex.env is kept, and a commented template is written otherwise:
#                  instances then read the instance tag annex:api-url.
#   --no-enable    do not enable annex-boot.service and annex-agent.service
#   --strict       fail (instead of warning) when the image lacks something the scripts need
#
# It installs /usr/libexec/annex/{annex-boot,annex-agent,poweroff,annex-lib.sh}, the two units
# and a condor.service drop-in in /etc/systemd/system, /etc/condor/config.d/20-annex-image.conf
# and /usr/share/doc/annex/README.md, and removes any per-instance state (a pool credential, the
# control plane's config fragment, /var/lib/annex/*) so none is baked into the image.
set -euo pipefail

src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
api_url=
enable=1
strict=0
root=/

while [ $# -gt 0 ]; do
  case "$1" in
  --api-url)
    [ $# -ge 2 ] || {
      echo "install.sh: --api-url needs a URL" >&2
      exit 2
    }
    api_url=$2
    shift 2
    ;;
  --api-url=*)
    api_url=${1#--api-url=}
    shift
    ;;
  --no-enable)
    enable=0
    shift
    ;;
  --strict)
    strict=1
    shift
    ;;
  -h | --help)
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  -*)
    echo "install.sh: unknown option $1" >&2
    exit 2
    ;;
  *)
    root=$1
    shift
    ;;
  esac
done

[ -d "$root" ] || {
  echo "install.sh: $root is not a directory" >&2
  exit 2
}
root=$(cd "$root" && pwd)
prefix=${root%/}

say() {
  echo "install.sh: $*" >&2
}

problems=0
lacking() {
  say "warning: $*"
  problems=$((problems + 1))
}

# path_in_root NAME...: true when one of the names exists (executable) in the image's usual bins.
in_image() {
  local name dir
  for name in "$@"; do
    for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
      if [ -x "$prefix$dir/$name" ]; then
        return 0
      fi
    done
  done
  return 1
}

if [ -n "$api_url" ] && ! [[ $api_url =~ ^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$ ]]; then
  echo "install.sh: --api-url must be an https URL" >&2
  exit 2
fi

owner=()
if [ "$(id -u)" -eq 0 ]; then
  owner=(-o 0 -g 0)
fi

install -d -m 0755 "${owner[@]}" "$prefix/usr/libexec/annex" "$prefix/etc/systemd/system" \
  "$prefix/etc/systemd/system/condor.service.d" "$prefix/etc/condor" "$prefix/etc/condor/config.d" \
  "$prefix/etc/annex" "$prefix/usr/share/doc/annex" "$prefix/var/lib"
install -d -m 0700 "${owner[@]}" "$prefix/etc/condor/passwords.d" "$prefix/etc/condor/tokens.d" \
  "$prefix/var/lib/annex"

install -m 0755 "${owner[@]}" "$src/annex-boot" "$src/annex-agent" "$src/poweroff" "$prefix/usr/libexec/annex/"
install -m 0644 "${owner[@]}" "$src/annex-lib.sh" "$prefix/usr/libexec/annex/"
install -m 0644 "${owner[@]}" "$src/systemd/annex-boot.service" "$src/systemd/annex-agent.service" \
  "$prefix/etc/systemd/system/"
install -m 0644 "${owner[@]}" "$src/systemd/condor.service.d-annex.conf" \
  "$prefix/etc/systemd/system/condor.service.d/50-annex.conf"
install -m 0644 "${owner[@]}" "$src/condor/20-annex-image.conf" "$prefix/etc/condor/config.d/"
install -m 0644 "${owner[@]}" "$src/README.md" "$prefix/usr/share/doc/annex/README.md"

env_file=$prefix/etc/annex/annex.env
if [ -n "$api_url" ]; then
  tmp=$(mktemp "$env_file.XXXXXXXX")
  if [ -f "$env_file" ]; then
    grep -v -E '^[[:space:]]*(export[[:space:]]+)?ANNEX_API_URL=' "$env_file" >"$tmp" || true
  else
    grep -v -E '^#?ANNEX_API_URL=' "$src/etc/annex.env" >"$tmp" || true
  fi
  printf 'ANNEX_API_URL=%s\n' "$api_url" >>"$tmp"
  chmod 0644 "$tmp"
  mv -f -- "$tmp" "$env_file"
  say "ANNEX_API_URL=$api_url in /etc/annex/annex.env"
elif [ ! -f "$env_file" ]; then
  install -m 0644 "${owner[@]}" "$src/etc/annex.env" "$env_file"
  say "no --api-url: instances will read the instance tag annex:api-url (enable instance metadata tags)"
fi

if [ "$enable" -eq 1 ]; then
  install -d -m 0755 "${owner[@]}" "$prefix/etc/systemd/system/multi-user.target.wants"
  for unit in annex-boot.service annex-agent.service; do
    ln -sfn "/etc/systemd/system/$unit" "$prefix/etc/systemd/system/multi-user.target.wants/$unit"
  done
  say "enabled annex-boot.service and annex-agent.service"
fi

# Nothing of one instance may be baked into the image.
rm -f -- "$prefix/etc/condor/passwords.d/POOL" "$prefix/etc/condor/tokens.d/annex" \
  "$prefix/etc/condor/config.d/50-annex.conf"
find "$prefix/var/lib/annex" -mindepth 1 -delete

# What the scripts need in the image.
in_image bash || lacking "bash not found"
in_image curl || lacking "curl not found (need >= 7.86.0 for --aws-sigv4 that signs x-amz-security-token)"
if ! in_image nft && ! { in_image iptables && in_image ip6tables; }; then
  lacking "neither iptables with ip6tables nor nft: the metadata service cannot be restricted to root, and annex-boot powers such an instance off"
fi
in_image condor_master || lacking "HTCondor (condor_master) not found"
for tool in date od mktemp timeout awk grep; do
  in_image "$tool" || lacking "$tool not found"
done
in_image python3 || say "note: no python3; JSON is read with the built-in awk parser"
if [ "$root" = / ] && command -v curl >/dev/null 2>&1; then
  version=$(curl --version | head -n 1 | cut -d' ' -f2)
  if ! printf '%s\n%s\n' 7.86.0 "$version" | sort -V -C; then
    lacking "curl $version is older than 7.86.0: it does not sign the x-amz-security-token header"
  fi
fi
if [ "$problems" -gt 0 ] && [ "$strict" -eq 1 ]; then
  say "$problems problem(s); failing (--strict)"
  exit 1
fi
say "installed into $root"

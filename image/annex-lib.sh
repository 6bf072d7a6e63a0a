# shellcheck shell=bash
# Shared by annex-boot and annex-agent (sourced, never run). Bash + curl + coreutils only;
# python3 is used to read JSON when it is there, a small awk parser otherwise.
#
# Secrets (the role's keys and session token, the IMDSv2 token, the pool credential) never go on
# a command line, into the environment of a child process, or into a log: curl gets them in a
# config read from its stdin (`-K -`), and JSON answers that hold them are written to files in a
# private (0700) temporary directory and read from there.
#
# Settings (environment):
#   ANNEX_ROOT          prefix for every file this code reads or writes (default /), for tests
#   ANNEX_IMDS_URL      instance metadata service (default http://169.254.169.254)
#   ANNEX_IMDS_TOKEN_TTL  IMDSv2 token lifetime in seconds (default 21600)
#   ANNEX_JSON_PARSER   auto (default) | python3 | awk
#   ANNEX_API_MAX_TIME  upper bound in seconds for one API call (default 20)
#   ANNEX_CREDENTIAL_REFRESH_MARGIN  re-read role credentials this many seconds before they
#                       expire (default 300)

ANNEX_ROOT=${ANNEX_ROOT:-/}
ANNEX_IMDS_URL=${ANNEX_IMDS_URL:-http://169.254.169.254}
ANNEX_IMDS_URL=${ANNEX_IMDS_URL%/}
ANNEX_IMDS_TOKEN_TTL=${ANNEX_IMDS_TOKEN_TTL:-21600}
ANNEX_JSON_PARSER=${ANNEX_JSON_PARSER:-auto}
ANNEX_API_MAX_TIME=${ANNEX_API_MAX_TIME:-20}
ANNEX_CREDENTIAL_REFRESH_MARGIN=${ANNEX_CREDENTIAL_REFRESH_MARGIN:-300}
ANNEX_PROG=${ANNEX_PROG:-annex}

# ---------------------------------------------------------------------------------------------
# Basics

log() {
  local now
  printf -v now '%(%Y-%m-%dT%H:%M:%SZ)T' -1
  printf '%s %s: %s\n' "$now" "$ANNEX_PROG" "$*" >&2
}

# Seconds since the epoch, without a child process.
now_epoch() {
  local now
  printf -v now '%(%s)T' -1
  printf '%s' "$now"
}

# A path inside ANNEX_ROOT: root_path /etc/condor -> /etc/condor, or $ANNEX_ROOT/etc/condor.
root_path() {
  printf '%s%s' "${ANNEX_ROOT%/}" "$1"
}

is_uint() {
  [[ $1 =~ ^[0-9]{1,10}$ ]]
}

# Accepts the ISO 8601 forms the API writes (2026-11-25T12:00:00Z, with optional fraction or offset).
is_iso_time() {
  [[ $1 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$ ]]
}

# ISO 8601 time -> epoch seconds (GNU date).
iso_to_epoch() {
  is_iso_time "$1" || return 1
  date -u -d "$1" +%s 2>/dev/null
}

# A private temporary directory for answers that hold secrets; removed on exit.
ANNEX_TMP=
make_private_tmp() {
  local old_umask
  old_umask=$(umask)
  umask 077
  ANNEX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/annex.XXXXXXXX")
  umask "$old_umask"
}

remove_private_tmp() {
  if [ -n "$ANNEX_TMP" ] && [ -d "$ANNEX_TMP" ]; then
    rm -rf -- "$ANNEX_TMP"
  fi
}

# Quotes a value for a curl config file line (`name = "value"`).
curl_config_quote() {
  local value=$1
  value=${value//\\/\\\\}
  value=${value//\"/\\\"}
  printf '"%s"' "$value"
}

# Printable, single-line, at most 200 characters: for logging what a server said.
sanitize_for_log() {
  local text=$1
  text=${text//[^[:print:]]/ }
  printf '%s' "${text:0:200}"
}

# curl >= 7.86.0 signs every header given with -H, so the session token is part of the
# signature; 7.75-7.85 sign only host, x-amz-date and content-type.
curl_signs_all_headers() {
  local version major minor
  version=$(curl --version 2>/dev/null | head -n 1)
  [[ $version =~ ^curl\ ([0-9]+)\.([0-9]+) ]] || return 1
  major=${BASH_REMATCH[1]}
  minor=${BASH_REMATCH[2]}
  [ "$major" -gt 7 ] || { [ "$major" -eq 7 ] && [ "$minor" -ge 86 ]; }
}

curl_supports_sigv4() {
  local version major minor
  version=$(curl --version 2>/dev/null | head -n 1)
  [[ $version =~ ^curl\ ([0-9]+)\.([0-9]+) ]] || return 1
  major=${BASH_REMATCH[1]}
  minor=${BASH_REMATCH[2]}
  [ "$major" -gt 7 ] || { [ "$major" -eq 7 ] && [ "$minor" -ge 75 ]; }
}

# ---------------------------------------------------------------------------------------------
# JSON: json_get FILE KEY.PATH prints the value at KEY.PATH (a string decoded, a number or
# true/false as written) without a trailing newline. Exit 1 when the path is missing, null or
# not a scalar; 2 when the file is not JSON. The file is read by the parser itself, so its
# contents never reach a command line.
# json_read FILE VAR=KEY.PATH...: reads several values with one parser run into the caller's
# variables; exit 1 when one is missing, 2 when the file is not JSON.

_annex_json_python='
import json, sys
try:
    with open(sys.argv[1], "rb") as f:
        document = json.loads(f.read().decode("utf-8"))
except Exception:
    sys.exit(2)
def lookup(path):
    value = document
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            return None
    if isinstance(value, (int, float)):
        return json.dumps(value).encode()
    return None
out = sys.stdout.buffer
if sys.argv[2] == "--many":
    # Each value as "=VALUE" or "!" (missing), NUL-terminated.
    for path in sys.argv[3:]:
        text = lookup(path)
        out.write(b"!\0" if text is None or b"\0" in text else b"=" + text + b"\0")
    sys.exit(0)
text = lookup(sys.argv[2])
if text is None:
    sys.exit(1)
out.write(text)
'

# A recursive-descent JSON parser in POSIX awk (mawk and gawk): enough for the API's answers,
# with every string escape including \uXXXX and surrogate pairs (written as UTF-8).
# shellcheck disable=SC2016 # awk source, not shell: nothing in it is meant to expand
_annex_json_awk='
function skipws(   c) {
  while (pos <= n) {
    c = substr(s, pos, 1)
    if (c == " " || c == "\t" || c == "\n" || c == "\r") pos++
    else break
  }
}
function hexval(h,   i, v, d) {
  v = 0
  for (i = 1; i <= 4; i++) {
    d = index("0123456789abcdef", tolower(substr(h, i, 1)))
    if (d == 0) { err = 1; return 0 }
    v = v * 16 + d - 1
  }
  return v
}
function utf8(cp) {
  if (cp < 128) return sprintf("%c", cp)
  if (cp < 2048) return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
  if (cp < 65536) return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
  return sprintf("%c%c%c%c", 240 + int(cp / 262144), 128 + int(cp / 4096) % 64, 128 + int(cp / 64) % 64, 128 + cp % 64)
}
function parse_string(   out, c, cp, lo) {
  pos++
  out = ""
  while (pos <= n) {
    c = substr(s, pos, 1)
    if (c == "\"") { pos++; return out }
    if (c < " ") { err = 1; return "" }
    if (c != "\\") { out = out c; pos++; continue }
    c = substr(s, pos + 1, 1)
    pos += 2
    if (c == "\"" || c == "\\" || c == "/") out = out c
    else if (c == "n") out = out "\n"
    else if (c == "t") out = out "\t"
    else if (c == "r") out = out "\r"
    else if (c == "b") out = out "\b"
    else if (c == "f") out = out "\f"
    else if (c == "u") {
      cp = hexval(substr(s, pos, 4)); pos += 4
      if (err) return ""
      if (cp >= 55296 && cp <= 56319) {
        if (substr(s, pos, 2) != "\\u") { err = 1; return "" }
        lo = hexval(substr(s, pos + 2, 4)); pos += 6
        if (err || lo < 56320 || lo > 57343) { err = 1; return "" }
        cp = 65536 + (cp - 55296) * 1024 + (lo - 56320)
      } else if (cp >= 56320 && cp <= 57343) { err = 1; return "" }
      if (cp == 0) { err = 1; return "" }
      out = out utf8(cp)
    } else { err = 1; return "" }
  }
  err = 1
  return ""
}
function found_value(path, v) {
  if (path == want) { result = v; found = 1 }
  if (path in wanted) { results[path] = v; got[path] = 1 }
}
function null_value(path) {
  if (path == want) found = 0
  if (path in wanted) delete got[path]
}
function parse_value(path,   c, v, rest) {
  if (err) return
  skipws()
  c = substr(s, pos, 1)
  if (c == "{") parse_object(path)
  else if (c == "[") parse_array(path)
  else if (c == "\"") { v = parse_string(); if (!err) found_value(path, v) }
  else if (substr(s, pos, 4) == "true") { pos += 4; found_value(path, "true") }
  else if (substr(s, pos, 5) == "false") { pos += 5; found_value(path, "false") }
  else if (substr(s, pos, 4) == "null") { pos += 4; null_value(path) }
  else {
    rest = substr(s, pos, 64)
    if (match(rest, /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) {
      found_value(path, substr(rest, 1, RLENGTH)); pos += RLENGTH
    } else err = 1
  }
}
function parse_object(path,   key, c) {
  pos++
  skipws()
  if (substr(s, pos, 1) == "}") { pos++; return }
  while (!err) {
    skipws()
    if (substr(s, pos, 1) != "\"") { err = 1; return }
    key = parse_string()
    if (err) return
    skipws()
    if (substr(s, pos, 1) != ":") { err = 1; return }
    pos++
    if (path == "") parse_value(key)
    else parse_value(path "." key)
    if (err) return
    skipws()
    c = substr(s, pos, 1)
    pos++
    if (c == "}") return
    if (c != ",") { err = 1; return }
  }
}
function parse_array(path,   i, c) {
  pos++
  skipws()
  if (substr(s, pos, 1) == "]") { pos++; return }
  for (i = 0; !err; i++) {
    parse_value(path "." i)
    if (err) return
    skipws()
    c = substr(s, pos, 1)
    pos++
    if (c == "]") return
    if (c != ",") { err = 1; return }
  }
}
BEGIN {
  # many: space-separated paths; each value is printed as "=VALUE" or "!" (missing), NUL-terminated.
  count = split(many, order, " ")
  for (i = 1; i <= count; i++) wanted[order[i]] = 1
  if (count > 0) want = "\001"
}
{ s = s $0 "\n" }
END {
  n = length(s); pos = 1; err = 0; found = 0
  parse_value("")
  skipws()
  if (err || pos <= n) exit 2
  if (count > 0) {
    for (i = 1; i <= count; i++) {
      if (order[i] in got) printf "=%s%c", results[order[i]], 0
      else printf "!%c", 0
    }
    exit 0
  }
  if (!found) exit 1
  printf "%s", result
  exit 0
}
'

json_parser() {
  case "$ANNEX_JSON_PARSER" in
  python3 | awk) printf '%s' "$ANNEX_JSON_PARSER" ;;
  *)
    if command -v python3 >/dev/null 2>&1; then
      printf 'python3'
    else
      printf 'awk'
    fi
    ;;
  esac
}

json_get() {
  local file=$1 path=$2
  if [ "$(json_parser)" = python3 ]; then
    python3 -I -S -c "$_annex_json_python" "$file" "$path"
  else
    LC_ALL=C awk -v want="$path" "$_annex_json_awk" "$file"
  fi
}

json_read() {
  local _jr_file=$1 _jr_spec _jr_value _jr_i _jr_status=0
  shift
  local -a _jr_names=() _jr_paths=() _jr_values=()
  for _jr_spec in "$@"; do
    _jr_names+=("${_jr_spec%%=*}")
    _jr_paths+=("${_jr_spec#*=}")
  done
  if [ "$(json_parser)" = python3 ]; then
    while IFS= read -r -d '' _jr_value; do
      _jr_values+=("$_jr_value")
    done < <(python3 -I -S -c "$_annex_json_python" "$_jr_file" --many "${_jr_paths[@]}" 2>/dev/null)
  else
    while IFS= read -r -d '' _jr_value; do
      _jr_values+=("$_jr_value")
    done < <(LC_ALL=C awk -v many="${_jr_paths[*]}" "$_annex_json_awk" "$_jr_file" 2>/dev/null)
  fi
  [ "${#_jr_values[@]}" -eq "${#_jr_paths[@]}" ] || return 2
  for _jr_i in "${!_jr_names[@]}"; do
    _jr_value=${_jr_values[_jr_i]}
    if [ "${_jr_value:0:1}" = "=" ]; then
      printf -v "${_jr_names[_jr_i]}" '%s' "${_jr_value:1}"
    else
      _jr_status=1
    fi
  done
  return "$_jr_status"
}

# ---------------------------------------------------------------------------------------------
# Instance metadata (IMDSv2)

_imds_token=
_imds_token_until=0

imds_refresh_token() {
  local now ttl=$ANNEX_IMDS_TOKEN_TTL margin token
  is_uint "$ttl" && [ "$ttl" -ge 1 ] && [ "$ttl" -le 21600 ] || ttl=21600
  now=$(now_epoch)
  token=$(curl -sS -f -X PUT --connect-timeout 2 --max-time 5 \
    -H "X-aws-ec2-metadata-token-ttl-seconds: $ttl" \
    "$ANNEX_IMDS_URL/latest/api/token" 2>/dev/null) || return 1
  [ -n "$token" ] || return 1
  _imds_token=$token
  # Renew well before the token expires: 5 minutes for long tokens, half the lifetime otherwise.
  if [ "$ttl" -gt 600 ]; then margin=300; else margin=$((ttl / 2)); fi
  _imds_token_until=$((now + ttl - margin))
}

imds_ensure_token() {
  if [ -z "$_imds_token" ] || [ "$(now_epoch)" -ge "$_imds_token_until" ]; then
    imds_refresh_token
  fi
}

# imds_fetch PATH OUTFILE: prints the HTTP status (000 when unreachable); the body goes to OUTFILE.
_imds_fetch_once() {
  local path=$1 out=$2
  curl_config_header "X-aws-ec2-metadata-token: $_imds_token" |
    curl -sS -K - --connect-timeout 2 --max-time 5 -o "$out" -w '%{http_code}' \
      "$ANNEX_IMDS_URL/latest/$path" 2>/dev/null
}

curl_config_header() {
  printf 'header = %s\n' "$(curl_config_quote "$1")"
}

imds_fetch() {
  local path=$1 out=$2 status
  if ! imds_ensure_token; then
    printf '000'
    return 0
  fi
  status=$(_imds_fetch_once "$path" "$out") || true
  if [ "$status" = 401 ]; then
    # The token expired (or IMDS restarted): take a new one and ask once more.
    if imds_refresh_token; then
      status=$(_imds_fetch_once "$path" "$out") || true
    fi
  fi
  printf '%s' "${status:-000}"
}

# imds_get PATH: prints a small, non-secret metadata value; fails unless IMDS answered 200.
imds_get() {
  local out status
  out="$ANNEX_TMP/imds.$$.$RANDOM"
  status=$(imds_fetch "$1" "$out")
  if [ "$status" != 200 ]; then
    rm -f -- "$out"
    return 1
  fi
  cat -- "$out"
  rm -f -- "$out"
}

# ---------------------------------------------------------------------------------------------
# Role credentials (from IMDS; rotate, so re-read before they expire)

_aws_access_key_id=
_aws_secret_access_key=
_aws_session_token=
_aws_credentials_until=0
ANNEX_ROLE_NAME=

credentials_load() {
  local role file status expiration expires_epoch ak sk token
  if [ -z "$ANNEX_ROLE_NAME" ]; then
    role=$(imds_get meta-data/iam/security-credentials/) || {
      log "no instance role on the metadata service (meta-data/iam/security-credentials/)"
      return 1
    }
    role=${role%%$'\n'*}
    if ! [[ $role =~ ^[A-Za-z0-9+=,.@_-]{1,128}$ ]]; then
      log "unexpected instance role name from the metadata service"
      return 1
    fi
    ANNEX_ROLE_NAME=$role
  fi
  file="$ANNEX_TMP/role-credentials.json"
  status=$(imds_fetch "meta-data/iam/security-credentials/$ANNEX_ROLE_NAME" "$file")
  if [ "$status" != 200 ]; then
    rm -f -- "$file"
    log "cannot read the role's credentials from the metadata service (HTTP $status)"
    return 1
  fi
  if ! json_read "$file" ak=AccessKeyId sk=SecretAccessKey token=Token expiration=Expiration; then
    rm -f -- "$file"
    log "the role's credentials from the metadata service are incomplete"
    return 1
  fi
  rm -f -- "$file"
  if ! expires_epoch=$(iso_to_epoch "$expiration"); then
    log "the role's credentials carry an unreadable Expiration; re-reading them every time"
    expires_epoch=0
  fi
  _aws_access_key_id=$ak
  _aws_secret_access_key=$sk
  _aws_session_token=$token
  _aws_credentials_until=$((expires_epoch - ANNEX_CREDENTIAL_REFRESH_MARGIN))
  return 0
}

# Re-reads the credentials when there are none or they expire within the refresh margin.
credentials_ensure() {
  if [ -z "$_aws_access_key_id" ] || [ "$(now_epoch)" -ge "$_aws_credentials_until" ]; then
    credentials_load
  fi
}

credentials_forget() {
  _aws_credentials_until=0
}

# ---------------------------------------------------------------------------------------------
# Signed API calls

ANNEX_API_URL_RESOLVED=
ANNEX_API_REGION_RESOLVED=

# Accepts https URLs, and http only to this machine (tests): the bootstrap answer carries the
# pool credential and must never cross a network in clear.
api_url_acceptable() {
  local url=$1
  [[ $url =~ ^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$ ]] && return 0
  [[ $url =~ ^http://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$ ]] && return 0
  return 1
}

# The signing region: ANNEX_API_REGION, else the region in an execute-api host name, else $1.
api_region_for() {
  local url=$1 fallback=$2
  if [ -n "${ANNEX_API_REGION:-}" ]; then
    printf '%s' "$ANNEX_API_REGION"
  elif [[ $url =~ ^https://[^/]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  else
    printf '%s' "$fallback"
  fi
}

# api_post PATH BODYFILE OUTFILE [MAX_TIME]: a SigV4-signed POST with the role's credentials;
# prints the HTTP status (000 when the API could not be reached).
api_post() {
  local path=$1 body=$2 out=$3 max_time=${4:-$ANNEX_API_MAX_TIME} status
  is_uint "$max_time" && [ "$max_time" -ge 1 ] || max_time=$ANNEX_API_MAX_TIME
  status=$(
    {
      printf 'user = %s\n' "$(curl_config_quote "$_aws_access_key_id:$_aws_secret_access_key")"
      curl_config_header "x-amz-security-token: $_aws_session_token"
    } | curl -sS -K - --aws-sigv4 "aws:amz:$ANNEX_API_REGION_RESOLVED:execute-api" \
      -X POST -H 'content-type: application/json' --data-binary "@$body" \
      --connect-timeout 5 --max-time "$max_time" -o "$out" -w '%{http_code}' \
      "${ANNEX_API_URL_RESOLVED%/}$path" 2>/dev/null
  ) || true
  printf '%s' "${status:-000}"
}

# A short description of an error answer (`{ "error": { "code", "message" } }`), for the log.
api_error_summary() {
  local file=$1 code message
  code=
  message=
  [ -s "$file" ] || return 0
  json_read "$file" code=error.code message=error.message || true
  if [ -n "$code$message" ]; then
    sanitize_for_log "$code: $message"
  fi
}

# ---------------------------------------------------------------------------------------------
# HTCondor

# HTCondor stores the pool password and the IDTOKENS pool signing key XOR-ed with 0xDEADBEEF
# ("simple_scramble", as condor_store_cred writes them) and reads back up to the first NUL.
# Reads the secret on stdin, writes the file's bytes to stdout; nothing passes through argv.
condor_scramble() {
  local byte esc out='' i=0
  local -a key=(222 173 190 239)
  while read -r byte; do
    [ -n "$byte" ] || continue
    printf -v esc '\\0%03o' "$((byte ^ key[i % 4]))"
    out+=$esc
    i=$((i + 1))
  done < <(od -An -v -tu1 | tr -s '[:blank:]' '\n')
  printf '%b' "$out"
}

# Where HTCondor reads this instance's credential: an IDTOKEN in its token directory
# (SEC_TOKEN_SYSTEM_DIRECTORY), a pool password in its password directory.
credential_path() {
  case "$1" in
  idtoken) root_path /etc/condor/tokens.d/annex ;;
  *) root_path /etc/condor/passwords.d/POOL ;;
  esac
}

# True for a compact JWS (header.payload.signature, base64url): what an IDTOKEN looks like.
is_idtoken() {
  [[ $1 =~ ^[A-Za-z0-9_-]{10,4000}\.[A-Za-z0-9_-]{10,8000}\.[A-Za-z0-9_-]{20,200}$ ]]
}

# Runs the power-off script (which honours ANNEX_POWEROFF_CMD).
request_poweroff() {
  local reason=$1 script
  script=${ANNEX_POWEROFF:-$ANNEX_LIBEXEC/poweroff}
  log "powering off: $reason"
  if ! bash "$script" "$reason"; then
    log "power-off command failed"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Metadata firewall: only root may reach the instance metadata service (the role's credentials).
# annex-boot installs it before it reads any credential and powers off when it cannot; annex-agent
# re-asserts it every heartbeat and powers off when it cannot. There is no switch to turn it off.
#
# iptables + ip6tables (both needed: the IPv6 endpoint exists when enabled on the instance), each
# rule INSERTED FIRST in OUTPUT, so an ACCEPT someone put earlier cannot win; else nftables, a table
# of its own whose base chain hooks output at priority -300 (before raw, mangle and filter),
# replaced atomically. Either way the result is read back, not taken from an exit status.
#
# ANNEX_IPTABLES / ANNEX_IP6TABLES / ANNEX_NFT name the commands (default: from PATH). They, like
# every ANNEX_* setting, come from the units and the root-owned /etc/annex/annex.env: image
# configuration, which neither a job (not root) nor the control plane's tags can change.
# ANNEX_ID (a command standing in for `id`) is honoured only against a fake metadata service: the
# local stack and the tests run these scripts unprivileged with stand-in firewall tools.

# The real metadata service (whatever ANNEX_IMDS_URL says).
ANNEX_IMDS_IPV4=169.254.169.254
ANNEX_IMDS_IPV6=fd00:ec2::254

# Set by metadata_firewall_ensure: why it failed; what is in place; 1 when it changed something.
ANNEX_FIREWALL_PROBLEM=
ANNEX_FIREWALL_HOW=
ANNEX_FIREWALL_CHANGED=0

imds_is_real() {
  [ "$ANNEX_IMDS_URL" = "http://$ANNEX_IMDS_IPV4" ] || [ "$ANNEX_IMDS_URL" = "http://[$ANNEX_IMDS_IPV6]" ]
}

effective_uid() {
  if [ -n "${ANNEX_ID:-}" ] && ! imds_is_real; then
    "$ANNEX_ID" -u
  else
    id -u
  fi
}

# iptables_positions TOOL ADDRESS: the 1-based positions in OUTPUT of the owner rule for ADDRESS
# (read back from `-S`, whose canonical form adds /32 or /128 and --reject-with), one a line.
iptables_positions() {
  local tool=$1 address=$2 line position=0 want
  want="-A OUTPUT -d $address -m owner ! --uid-owner 0 -j REJECT"
  while IFS= read -r line; do
    [[ $line == "-A OUTPUT "* ]] || continue
    position=$((position + 1))
    line=${line%% --reject-with *}
    line=${line/" -d $address/32 "/" -d $address "}
    line=${line/" -d $address/128 "/" -d $address "}
    [ "$line" != "$want" ] || printf '%s\n' "$position"
  done < <("$tool" -w 5 -S OUTPUT 2>/dev/null)
}

# iptables_ensure TOOL ADDRESS: the owner rule for ADDRESS first in OUTPUT, exactly once.
iptables_ensure() {
  local tool=$1 address=$2 i
  local -a rule=(-d "$address" -m owner ! --uid-owner 0 -j REJECT) positions=()
  mapfile -t positions < <(iptables_positions "$tool" "$address")
  if [ "${positions[0]:-}" != 1 ]; then
    # Missing, or no longer first: insert it at the top (never a moment without it).
    "$tool" -w 5 -I OUTPUT 1 "${rule[@]}" >/dev/null 2>&1 || return 1
    ANNEX_FIREWALL_CHANGED=1
    mapfile -t positions < <(iptables_positions "$tool" "$address")
  fi
  # Copies further down are dead weight; remove them, the last first so the numbers hold.
  for ((i = ${#positions[@]} - 1; i >= 1; i--)); do
    "$tool" -w 5 -D OUTPUT "${positions[i]}" >/dev/null 2>&1 || break
  done
  # Verified by reading it back, not by the exit status of -I.
  "$tool" -w 5 -C OUTPUT "${rule[@]}" >/dev/null 2>&1 || return 1
  mapfile -t positions < <(iptables_positions "$tool" "$address")
  [ "${positions[0]:-}" = 1 ]
}

# nft_listing_ok LISTING: the annex_imds chain, hooked to output, rejecting both addresses.
nft_listing_ok() {
  [[ $1 == *"hook output"* ]] &&
    [[ $1 == *"ip daddr $ANNEX_IMDS_IPV4 "*reject* ]] &&
    [[ $1 == *"ip6 daddr $ANNEX_IMDS_IPV6 "*reject* ]]
}

nft_ensure() {
  local nft=$1 listing
  if listing=$("$nft" list chain inet annex_imds output 2>/dev/null) && nft_listing_ok "$listing"; then
    return 0
  fi
  # One transaction: create the table if absent, delete it, define it again (idempotent).
  "$nft" -f - >/dev/null 2>&1 <<EOT || return 1
table inet annex_imds
delete table inet annex_imds
table inet annex_imds {
  chain output {
    type filter hook output priority -300; policy accept;
    ip daddr $ANNEX_IMDS_IPV4 meta skuid != 0 reject
    ip6 daddr $ANNEX_IMDS_IPV6 meta skuid != 0 reject
  }
}
EOT
  ANNEX_FIREWALL_CHANGED=1
  listing=$("$nft" list chain inet annex_imds output 2>/dev/null) && nft_listing_ok "$listing"
}

# metadata_firewall_ensure: the firewall in place (installed or repaired); fails, with
# ANNEX_FIREWALL_PROBLEM, when it cannot be. The caller powers the instance off then.
metadata_firewall_ensure() {
  local uid iptables ip6tables nft
  ANNEX_FIREWALL_PROBLEM=
  ANNEX_FIREWALL_HOW=
  ANNEX_FIREWALL_CHANGED=0
  uid=$(effective_uid 2>/dev/null) || uid=
  if [ "$uid" != 0 ]; then
    ANNEX_FIREWALL_PROBLEM="not running as root (uid ${uid:-unknown})"
    return 1
  fi
  iptables=$(command -v "${ANNEX_IPTABLES:-iptables}" 2>/dev/null) || iptables=
  ip6tables=$(command -v "${ANNEX_IP6TABLES:-ip6tables}" 2>/dev/null) || ip6tables=
  nft=$(command -v "${ANNEX_NFT:-nft}" 2>/dev/null) || nft=
  if [ -n "$iptables" ] && [ -n "$ip6tables" ]; then
    if ! iptables_ensure "$iptables" "$ANNEX_IMDS_IPV4"; then
      ANNEX_FIREWALL_PROBLEM="iptables could not put the rule for $ANNEX_IMDS_IPV4 first in OUTPUT"
      return 1
    fi
    if ! iptables_ensure "$ip6tables" "$ANNEX_IMDS_IPV6"; then
      ANNEX_FIREWALL_PROBLEM="ip6tables could not put the rule for $ANNEX_IMDS_IPV6 first in OUTPUT"
      return 1
    fi
    ANNEX_FIREWALL_HOW="iptables and ip6tables owner rules first in OUTPUT"
  elif [ -n "$nft" ]; then
    if ! nft_ensure "$nft"; then
      ANNEX_FIREWALL_PROBLEM="nft could not install the table inet annex_imds"
      return 1
    fi
    ANNEX_FIREWALL_HOW="nftables table inet annex_imds, output hook at priority -300"
  elif [ -n "$iptables" ]; then
    ANNEX_FIREWALL_PROBLEM="ip6tables not found (and no nft): the IPv6 endpoint $ANNEX_IMDS_IPV6 cannot be restricted"
    return 1
  else
    ANNEX_FIREWALL_PROBLEM="neither iptables nor nft found"
    return 1
  fi
}

# metadata_firewall_check boot|agent: metadata_firewall_ensure, and says what it did (annex-boot:
# always; annex-agent: when it had to repair the firewall). Fails with the reason logged.
metadata_firewall_check() {
  if ! metadata_firewall_ensure; then
    log "metadata firewall: $ANNEX_FIREWALL_PROBLEM"
    return 1
  fi
  if [ "$1" = boot ]; then
    log "metadata service restricted to root ($ANNEX_FIREWALL_HOW)"
  elif [ "$ANNEX_FIREWALL_CHANGED" -eq 1 ]; then
    log "metadata firewall re-asserted: the rule was missing or no longer first ($ANNEX_FIREWALL_HOW)"
  fi
}

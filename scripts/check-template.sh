#!/usr/bin/env bash
# Checks the packaged CloudFormation template (npm run package) with cfn-lint (from the moto venv,
# pinned in scripts/requirements.txt) and checkov (its own venv, pinned in
# scripts/requirements-checkov.txt; installed here on first use). Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

template=.serverless/cloudformation-template-update-stack.json
if [ ! -f "$template" ]; then
  echo "check-template: $template is missing; run npm run package first" >&2
  exit 2
fi

# W3005: the framework adds DependsOn on each function's role next to the GetAtt that already
# orders them; redundant, harmless, and not ours to change.
.venv/bin/cfn-lint --ignore-checks W3005 -- "$template"
echo "cfn-lint: no findings"

venv=.venv-checkov
stamp="$venv/.requirements.stamp"
if [ ! -x "$venv/bin/checkov" ] || ! cmp -s scripts/requirements-checkov.txt "$stamp"; then
  echo "check-template: installing checkov into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-checkov.txt
  cp scripts/requirements-checkov.txt "$stamp"
fi
"$venv/bin/checkov" --config-file .checkov.yaml --skip-download -f "$template"
echo "checkov: no findings beyond the documented skips (.checkov.yaml)"

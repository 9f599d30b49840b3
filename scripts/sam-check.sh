#!/usr/bin/env bash
# Check the SAM application without Docker or an AWS account:
#   scripts/sam-check.sh              sam validate --lint, then sam build (arm64 wheels, no container)
#   scripts/sam-check.sh --checkov    the same, then checkov on template.yaml (prints its counts)
#   scripts/sam-check.sh --checkov-only
#
# The SAM CLI and checkov each live in their own virtualenv (.venv-sam, .venv-checkov; git-ignored)
# because both pin their own boto3/botocore and would fight with the project's .venv. Each is
# (re)installed when missing or at another version than pinned here.
set -euo pipefail

SAM_CLI_VERSION=1.170.0
CHECKOV_VERSION=3.3.30

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

run_sam=1
run_checkov=0
for arg in "$@"; do
  case "$arg" in
    --checkov) run_checkov=1 ;;
    --checkov-only) run_checkov=1; run_sam=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "sam-check: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-$(bash scripts/find-python.sh)}
# sam build's Python builder looks for python3.12 (with pip) on PATH.
PATH="$(dirname "$PY"):$PATH"
export PATH
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export SAM_CLI_TELEMETRY=0
export BC_SKIP_MAPPING=TRUE  # checkov: no download of guideline mappings (no network)

# ensure_tool VENV_DIR PACKAGE VERSION: a virtualenv holding PACKAGE==VERSION.
ensure_tool() {
  local dir=$1 pkg=$2 version=$3
  local stamp="$dir/.installed-$pkg-$version"
  [ -f "$stamp" ] && return 0
  echo "sam-check: installing $pkg==$version into $dir"
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  local log
  log=$(mktemp)
  if ! "$dir/bin/python" -m pip install --disable-pip-version-check --quiet "$pkg==$version" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "sam-check: could not install $pkg==$version" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
}

# sam build silently skips a CodeUri that does not exist (and would ship an empty function):
# every function folder must hold its handler module.
missing=0
for uri in $(sed -n 's/^ *CodeUri: *\([^ #]*\).*/\1/p' template.yaml); do
  if [ ! -f "${uri%/}/app.py" ]; then
    echo "sam-check: ${uri%/}/app.py is missing (CodeUri of a function in template.yaml)" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1

if [ "$run_sam" = 1 ]; then
  ensure_tool .venv-sam aws-sam-cli "$SAM_CLI_VERSION"
  SAM=.venv-sam/bin/sam
  echo "sam-check: $("$SAM" --version)"
  echo "sam-check: sam validate --lint"
  "$SAM" validate --lint --template-file template.yaml
  echo "sam-check: sam build"
  "$SAM" build --template-file template.yaml --cached --parallel
fi

if [ "$run_checkov" = 1 ]; then
  ensure_tool .venv-checkov checkov "$CHECKOV_VERSION"
  echo "sam-check: checkov $CHECKOV_VERSION on template.yaml"
  json=$(mktemp)
  errlog=$(mktemp)
  # Exit status 1 just means failed checks: the summary below decides.
  .venv-checkov/bin/checkov --file template.yaml --framework cloudformation --skip-download \
    --output json >"$json" 2>"$errlog" || true
  if ! [ -s "$json" ]; then
    cat "$errlog" >&2
    rm -f "$json" "$errlog"
    echo "sam-check: checkov produced no report" >&2
    exit 1
  fi
  rm -f "$errlog"
  rc=0
  if "$PY" - "$json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
passed = failed = skipped = 0
for rep in reports:
    summary = rep.get("summary", {})
    passed += summary.get("passed", 0)
    failed += summary.get("failed", 0)
    skipped += summary.get("skipped", 0)
    results = rep.get("results", {})
    for check in results.get("failed_checks", []):
        print(f"  FAILED  {check['check_id']} {check['resource']}: {check['check_name']}")
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        print(f"  skipped {check['check_id']} {check['resource']}: {reason}")
print(f"sam-check: checkov summary: passed={passed} failed={failed} skipped={skipped}")
sys.exit(1 if failed else 0)
EOF
  then :; else rc=$?; fi
  rm -f "$json"
  [ "$rc" = 0 ] || exit "$rc"
fi

echo "sam-check: OK"

#!/usr/bin/env bash
# Check the SAM application without Docker or an AWS account:
#   scripts/sam-check.sh              sam validate --lint, then sam build (arm64 wheels, no container)
#   scripts/sam-check.sh --checkov    the same, then checkov on template.yaml (prints its counts)
#   scripts/sam-check.sh --checkov-only
#   scripts/sam-check.sh --package-check   also build for this machine's architecture into
#                                          .aws-sam-host and import every function's handler from
#                                          that output alone (tools/package_check.py)
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
run_package=0
for arg in "$@"; do
  case "$arg" in
    --checkov) run_checkov=1 ;;
    --checkov-only) run_checkov=1; run_sam=0 ;;
    --package-check) run_package=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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

if [ "$run_package" = 1 ]; then
  # The deployed build is arm64 (its wheels do not load here): build once more for this machine,
  # from a copy of the template whose only change is the architecture, into .aws-sam-host.
  case "$(uname -m)" in
    x86_64|amd64) host_arch=x86_64 ;;
    aarch64|arm64) host_arch=arm64 ;;
    *) echo "sam-check: no Lambda architecture for $(uname -m)" >&2; exit 1 ;;
  esac
  ensure_tool .venv-sam aws-sam-cli "$SAM_CLI_VERSION"
  mkdir -p .aws-sam-host
  sed -E "s/^( *(Architectures|CompatibleArchitectures): *)\[arm64\]/\1[$host_arch]/; s/^( *BuildArchitecture: *)arm64/\1$host_arch/" \
    template.yaml >.aws-sam-host/template.yaml
  if [ "$host_arch" != arm64 ] && grep -n arm64 .aws-sam-host/template.yaml >&2; then
    echo "sam-check: template.yaml names arm64 where the package check cannot change it" >&2
    exit 1
  fi
  echo "sam-check: sam build for $host_arch into .aws-sam-host/build"
  .venv-sam/bin/sam build --template-file .aws-sam-host/template.yaml --base-dir "$ROOT" \
    --build-dir .aws-sam-host/build --cache-dir .aws-sam-host/cache --cached --parallel
  # boto3 as the Lambda runtime provides it: the version of the dev lock, hash-checked
  boto3_pin=$(awk '/^boto3==/{print $1}' requirements-dev.txt)
  runtime=".aws-sam-host/runtime-${boto3_pin#boto3==}"
  if [ ! -d "$runtime" ]; then
    "$PY" -m pip install --quiet --disable-pip-version-check --target "$runtime.tmp" "$boto3_pin"
    mv "$runtime.tmp" "$runtime"
  fi
  [ -x .venv/bin/python ] || make install
  PYTHONPATH="$ROOT/layers/common:$ROOT" .venv/bin/python -m tools.package_check .aws-sam-host/build "$runtime"
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

#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter (the Lambda runtime's version).
# Looks on PATH first, then in pyenv; exits 1 if none is found.
set -u
for cand in python3.12 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/"3.12*/bin/python3.12; do
  if [ -n "$cand" ] && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
    command -v "$cand" 2>/dev/null || echo "$cand"
    exit 0
  fi
done
echo "python3.12 not found: install Python 3.12 (the Lambda runtime) or set PYTHON=/path/to/python3.12" >&2
exit 1

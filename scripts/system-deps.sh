#!/usr/bin/env bash
# System packages the test suite needs beyond PyPI: Debian's chromium (map tests in a real
# browser) and postgresql (registry tests against a real server). Installed when missing
# and we may (root with apt-get); otherwise the tests that need them say they are skipped.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${need[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-noto-cjk >/dev/null
else
  echo "system-deps: missing ${need[*]}; install them (Debian: apt-get install ${need[*]}) or the browser/postgres tests are skipped"
fi

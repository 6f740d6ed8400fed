#!/usr/bin/env bash
# System packages the project needs beyond PyPI, all from Debian: chromium (map tests in a
# real browser), postgresql (registry tests against a real server), fonts-noto-cjk (Chinese
# text in the one-page PDF report and in browser screenshots) and poppler-utils (the PDF
# tests read the report back with pdftotext/pdftoppm). Installed when missing and we may
# (root with apt-get); otherwise the tests that need them say they are skipped.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc >/dev/null 2>&1 || need+=(fonts-noto-cjk)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
if ((${#need[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${need[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "system-deps: missing ${need[*]}; install them (Debian: apt-get install ${need[*]}) or the tests that need them are skipped"
fi

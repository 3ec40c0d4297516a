#!/usr/bin/env bash
# Installs the serving runtime with the common model flavours into a new virtual
# environment: the serving image's install step, and what CI runs to prove it.
#   serving/install.sh SOURCE_TREE TARGET_VENV
set -euo pipefail
source_tree=$1
target=$2
python3 -m venv "$target"
"$target/bin/pip" install --no-cache-dir --quiet --upgrade pip
"$target/bin/pip" install --no-cache-dir --quiet "$source_tree[serving,flavours]"
# What serving never runs, a fifth of the image: the packages' own test suites, C headers,
# Cython sources and type stubs, Arrow's RPC framework (Flight; nothing else links it),
# and the installer itself (a model's recorded requirements are checked against the
# installed metadata, not by pip).
site=$("$target/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
find "$site" -mindepth 2 -type d -name tests -prune -exec rm -rf {} +
find "$site" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' \) -delete
rm -rf "$site/pyarrow/include" "$site/numpy/_core/include" \
  "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_python_flight.so* "$site"/pyarrow/_flight.*
"$target/bin/pip" uninstall --yes --quiet pip setuptools
"$target/bin/modelplane" --version

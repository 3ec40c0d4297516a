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
"$target/bin/modelplane" --version

#!/bin/sh
# Run by `bentoml containerize` (bentofile.yaml: docker.setup_script) after the Python packages are installed:
# puts the embedded model (about 0.5 GB) into the image, so the LLM service starts without a network. An image
# whose LLM service relays to vLLM / LMDeploy (FNCALL_BENTO_LLM=openai:...) can drop this step.
set -eu
data_dir="${FNCALL_DATA_DIR:-/home/bentoml/fncall}"
FNCALL_DATA_DIR="$data_dir" fncall models fetch
if id bentoml >/dev/null 2>&1; then
    chown -R bentoml:bentoml "$data_dir"  # the server runs as `bentoml` and keeps its SQLite file here too
fi

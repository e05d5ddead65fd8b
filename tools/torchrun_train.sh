#!/usr/bin/env bash
# MAE pretraining on N nodes x G GPUs without SLURM: run this same command on every node.
# torchrun starts G processes per node; they meet at a c10d rendezvous on HOST:PORT (any one of the nodes).
# FSDP2 hybrid sharding: parameters sharded inside a node, replicated across nodes.
#
#   NNODES=4 NPROC=8 RDZV=node0:29500 RUN_DIR=/shared/runs/vit_e bash tools/torchrun_train.sh +exp=vit_e
#   RUN_DIR=outputs/vit_g bash tools/torchrun_train.sh +exp=vit_g                 # one node, all its GPUs
#
# Extra arguments are Hydra overrides. RUN_DIR is the fixed run directory (on a file system all nodes share;
# every rank writes its checkpoint shards there). With resume=auto a restarted job, or torchrun's own
# restart after a failure (MAX_RESTARTS), continues from the newest complete checkpoint in it. SIGTERM
# (e.g. from a scheduler) makes fourd finish the step, save a checkpoint and exit.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${RUN_DIR:?set RUN_DIR to a fixed run directory shared by all nodes, e.g. RUN_DIR=outputs/vit_e}"
NNODES="${NNODES:-1}"
NPROC="${NPROC:-$(nvidia-smi --list-gpus 2>/dev/null | wc -l)}"
RDZV="${RDZV:-localhost:29500}"
RDZV_ID="${RDZV_ID:-fourd}"
MAX_RESTARTS="${MAX_RESTARTS:-3}"
if [ "${NPROC}" -lt 1 ]; then echo "no GPU found: set NPROC" >&2; exit 1; fi
if [ -z "${TORCHRUN:-}" ]; then  # the repository's .venv if there is one, else torchrun on PATH
    if [ -x .venv/bin/torchrun ]; then TORCHRUN=.venv/bin/torchrun; else TORCHRUN=torchrun; fi
fi

exec "${TORCHRUN}" --nnodes="${NNODES}" --nproc-per-node="${NPROC}" --max-restarts="${MAX_RESTARTS}" \
    --rdzv-backend=c10d --rdzv-endpoint="${RDZV}" --rdzv-id="${RDZV_ID}" \
    -m fourd.train trainer.num_nodes="${NNODES}" trainer.devices="${NPROC}" \
    strategy=fsdp strategy.sharding=hybrid resume=auto hydra.run.dir="${RUN_DIR}" "$@"

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
# restart after a failure (MAX_RESTARTS), continues from the newest complete checkpoint in it. SIGTERM or
# SIGINT (e.g. from a scheduler) makes fourd finish the step and save a checkpoint; torchrun gives the ranks
# SHUTDOWN_TIMEOUT seconds for it (where torchrun reads TORCH_ELASTIC_SHUTDOWN_TIMEOUT; older ones kill them
# after 30 s), and this script then exits 75 (run again with resume=auto) if a checkpoint was saved.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${RUN_DIR:?set RUN_DIR to a fixed run directory shared by all nodes, e.g. RUN_DIR=outputs/vit_e}"
if [ -z "${TORCHRUN:-}" ]; then  # the repository's .venv if there is one, else torchrun on PATH
    if [ -x .venv/bin/torchrun ]; then TORCHRUN=.venv/bin/torchrun; else TORCHRUN=torchrun; fi
fi
if [ -z "${NPROC:-}" ]; then  # the GPUs this process may use (CUDA_VISIBLE_DEVICES included), through torch
    PYTHON="$(dirname "$(command -v "${TORCHRUN}")")/python"
    NPROC="$("${PYTHON}" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
fi
NNODES="${NNODES:-1}"
RDZV="${RDZV:-localhost:29500}"
RDZV_ID="${RDZV_ID:-fourd}"
MAX_RESTARTS="${MAX_RESTARTS:-3}"
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT="${SHUTDOWN_TIMEOUT:-600}"
if [ "${NPROC}" -lt 1 ]; then echo "error: no GPU found: set NPROC" >&2; exit 1; fi

"${TORCHRUN}" --nnodes="${NNODES}" --nproc-per-node="${NPROC}" --max-restarts="${MAX_RESTARTS}" \
    --rdzv-backend=c10d --rdzv-endpoint="${RDZV}" --rdzv-id="${RDZV_ID}" \
    -m fourd.train trainer.num_nodes="${NNODES}" trainer.devices="${NPROC}" \
    strategy=fsdp strategy.sharding=hybrid resume=auto hydra.run.dir="${RUN_DIR}" "$@" &
pid=$!
signalled="$(mktemp)"  # its time stamp: when the stop signal came
rm -f "${signalled}"
trap 'touch "${signalled}"; kill -TERM "${pid}" 2>/dev/null || true' TERM INT
status=0
wait "${pid}" || status=$?
if [ -e "${signalled}" ]; then
    status=0
    wait "${pid}" || status=$?  # the first wait ended with the signal; this one with torchrun
    saved="$(find "${RUN_DIR}/checkpoints" -maxdepth 1 -name 'step_*' -newer "${signalled}" 2>/dev/null | head -n 1)"
    rm -f "${signalled}"
    if [ -n "${saved}" ]; then echo "fourd: stopped by a signal after saving ${saved}" >&2; exit 75; fi
fi
exit "${status}"

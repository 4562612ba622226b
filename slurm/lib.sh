# Shared by the job templates (source it from the project root: `source slurm/lib.sh`).
#
# launch CMD...   run CMD in the background and wait for it, forwarding the warning
#                 signals the batch shell receives (--signal=B:USR1@120, or the TERM
#                 of a pre-emption) to it: srun and mpiexec pass them on to every rank,
#                 and meanfield writes a checkpoint at the next step and exits with 75.
# finish CODE     exit 75 (pre-empted, checkpoint written): requeue this job (its
#                 SLURM_RESTART_COUNT goes up, so `resuming` is true next time);
#                 otherwise exit with CODE.
# resuming        true on a requeued job (or when RESUME=1 is exported at submission).

PREEMPTED=75

resuming() {
  [[ ${SLURM_RESTART_COUNT:-0} -gt 0 || -n ${RESUME:-} ]]
}

launch() {
  LAUNCHED=""
  trap 'kill -s USR1 "$LAUNCHED" 2>/dev/null' USR1
  trap 'kill -s TERM "$LAUNCHED" 2>/dev/null' TERM
  "$@" &
  LAUNCHED=$!
  while kill -0 "$LAUNCHED" 2>/dev/null; do
    wait "$LAUNCHED"  # returns early when a trapped signal arrives: wait again
  done
  wait "$LAUNCHED"  # the exit code of CMD
}

finish() {
  local code=$1
  if [[ $code -eq $PREEMPTED ]]; then
    echo "pre-empted: checkpoint written; requeueing job ${SLURM_JOB_ID}"
    scontrol requeue "${SLURM_JOB_ID}"
    exit 0
  fi
  exit "$code"
}

#!/usr/bin/env bash
# Container entrypoint: restore the workspace with persist, then run the agent beside
# `persist watch`, and save everything once more when the container is stopped.
#
#   ENTRYPOINT ["/usr/local/bin/start.sh"]
#   CMD ["node", "/opt/agent/agent.js"]
#
# Environment:
#   ENVIRONMENT                  development | production (selects the spec's environment)
#   PERSIST_SPEC                 the spec (default /opt/agent/persist.yaml)
#   PERSIST_BOOT_LOCK_TIMEOUT    how long the boot apply waits for another apply, and for the bucket
#                                lease of the container this one replaces (default 2m: longer than the
#                                lease's time to live, 60s unless the spec's `lease: { ttl }` says)
#   PERSIST_WATCH_INTERVAL       time between watch rounds (default 5m)
#   PERSIST_WATCH_VERIFY_EVERY   rounds between two size checks of what is stored (default 12)
#   PERSIST_SHUTDOWN_TIMEOUT     bound on the save at stop (default 50s: inside `docker stop -t 60`)
#   plus the variables the spec reads (CF_ACCOUNT_ID, R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY).
#
# What happens on `docker stop` (SIGTERM): the agent gets SIGTERM and is waited for; then watch
# gets SIGTERM. watch does NOT push on SIGTERM: it lets the action in progress finish (or stop at a
# safe point), starts nothing new, and exits 0. So this script runs `persist shutdown` itself: it
# pushes every sync, updates every bundle, waits until no mount holds anything unuploaded (rclone's
# write-back cache), and unmounts; it exits 1 naming what is not saved when it cannot within
# PERSIST_SHUTDOWN_TIMEOUT. Give the container more than that: `docker stop -t 60` (the default
# grace period is 10 s, after which everything is SIGKILLed). A watch that dies is restarted.
#
# The bucket lease: this container's boot apply takes it (waiting for the previous container's
# last push), watch renews it, shutdown releases it. A container killed without shutdown keeps it
# until it expires, so the next one's boot waits up to the lease's time to live.
set -euo pipefail

export PERSIST_SPEC="${PERSIST_SPEC:-/opt/agent/persist.yaml}"
: "${ENVIRONMENT:?set ENVIRONMENT to the spec environment to use (e.g. development or production)}"
boot_lock_timeout="${PERSIST_BOOT_LOCK_TIMEOUT:-2m}"
watch_interval="${PERSIST_WATCH_INTERVAL:-5m}"
verify_every="${PERSIST_WATCH_VERIFY_EVERY:-12}"
shutdown_timeout="${PERSIST_SHUTDOWN_TIMEOUT:-50s}"

if [ "$#" -eq 0 ]; then
  echo "start.sh: no agent command given (pass it as CMD)" >&2
  exit 64
fi

# 1. Mount, restore and link, once the bucket lease is ours. If anything fails (no mount, a
#    conflict, another container still holding the lease after the timeout), stop here: an agent
#    started on an empty workspace is how good backups get overwritten.
echo "start.sh: persist apply ($ENVIRONMENT, $PERSIST_SPEC)"
if ! persist apply --auto-approve --lock-timeout "$boot_lock_timeout"; then
  echo "start.sh: persist apply failed; not starting the agent on an unrestored workspace" >&2
  exit 1
fi

# 2. watch re-plans every interval and applies only safe actions (mount, remount, create a missing
#    link, push, restore into an empty place); anything else is logged as needing a person. It
#    keeps the lease renewed, and checks what is stored every few rounds (pushing back what is missing).
#    A watch that dies (a crash, the OOM killer) is started again after 5 s.
watch_loop() {
  local child=""
  trap 'trap - TERM; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child" 2>/dev/null; exit 0' TERM
  while true; do
    persist watch --interval "$watch_interval" --verify-every "$verify_every" --auto-approve &
    child=$!
    status=0
    wait "$child" || status=$?
    child=""
    echo "start.sh: persist watch exited (status $status); restarting it in 5 s" >&2
    sleep 5 &
    wait $! || true
  done
}
watch_loop &
watch_pid=$!

# 3. The agent itself.
"$@" &
agent_pid=$!

shutdown_status=0
final_push() {
  kill -TERM "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  echo "start.sh: persist shutdown (timeout $shutdown_timeout)"
  persist shutdown --timeout "$shutdown_timeout" || {
    shutdown_status=$?
    echo "start.sh: persist shutdown could not save everything; see above" >&2
  }
}

on_signal() {
  trap - TERM INT
  echo "start.sh: stopping the agent"
  kill -TERM "$agent_pid" 2>/dev/null || true
  wait "$agent_pid" 2>/dev/null || true
  final_push
  exit "$shutdown_status"
}
trap on_signal TERM INT

agent_status=0
wait "$agent_pid" || agent_status=$?
# The agent ended on its own: save, then exit with its status so the orchestrator sees it.
trap - TERM INT
final_push
if [ "$agent_status" -eq 0 ]; then exit "$shutdown_status"; fi
exit "$agent_status"

#!/usr/bin/env bash
# A scripted agent for `hive exec` tests (tests/queue/consume_exec.rs): an agent that
# asks for approvals only through the wrapper, `"$HIVE_BIN" exec -- <command>`, as
# any CLI agent whose shell is pointed at it would. It prints a result line with the
# wrapper's exit status, so the test reads it from the task's result.
#   wrapped.sh exec  "<words>"   run the words through hive exec
#   wrapped.sh forge "<words>"   the same with a wrong secret (another process)
set -u
mode="${1:-exec}"
set -f
# shellcheck disable=SC2086 # the words are split on purpose
set -- ${2:-true}
case "$mode" in
exec)
  "$HIVE_BIN" exec --reason "scripted" -- "$@"
  ;;
forge)
  HIVE_EXEC_SECRET=0000 "$HIVE_BIN" exec -- "$@"
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 2
  ;;
esac
st=$?
echo "{\"result\": {\"status\": \"ok\", \"summary\": \"exec exit $st\"}}"

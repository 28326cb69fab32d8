#!/usr/bin/env bash
# A scripted agent for `hive consume` tests (tests/queue/consume.rs). It speaks the
# consumer protocol of docs/CONSUME.md on its stdio: JSON lines `{"event": ...}`,
# `{"approval": ...}` (then reads one decision line on stdin) and `{"result": ...}`;
# anything else it prints is plain output. The mode is its first argument.
set -u
mode="${1:-progress}"

case "$mode" in
progress)
  echo "hello from the agent"
  echo "a warning on stderr" >&2
  echo '{"event": {"stage": "build", "message": "compiling", "pct": 40}}'
  # What the environment gave: secrets must be gone, the task's context there.
  echo "env GITHUB_TOKEN=${GITHUB_TOKEN:-unset} INNOCENT=${INNOCENT:-unset} HIVE_TASK=${HIVE_TASK:-unset} HIVE_LEASE=${HIVE_LEASE:+set} cwd=$(pwd)"
  echo "{\"result\": {\"status\": \"ok\", \"summary\": \"done in $(basename "$(pwd)")\"}}"
  ;;
approve-build | approve-root)
  if [ "$mode" = approve-build ]; then cmd="rm -rf build"; else cmd="rm -rf /"; fi
  echo "{\"approval\": {\"id\": \"a1\", \"tool\": \"shell\", \"command\": \"$cmd\", \"reason\": \"clean up\"}}"
  read -r decision || { echo "no decision"; exit 5; }
  echo "decision line: $decision"
  case "$decision" in
  *'"decision":"approve"'*)
    echo '{"result": {"status": "ok", "summary": "approved; would run it now"}}' ;;
  *)
    by=$(printf '%s' "$decision" | sed -n 's/.*"by":"\([^"]*\)".*/\1/p')
    echo "{\"result\": {\"status\": \"fail\", \"summary\": \"denied by $by\"}}" ;;
  esac
  ;;
secret)
  echo "my key is AKIAIOSFODNN7EXAMPLE and my token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
  echo '{"event": {"stage": "oops", "message": "token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}}'
  echo '{"result": {"status": "ok", "summary": "leaked nothing, hopefully"}}'
  ;;
grandchild)
  # A grandchild in the same process group, holding our stdout open.
  sleep 1000 &
  echo "{\"event\": {\"stage\": \"spawned\", \"message\": \"grandchild\", \"grandchild\": $!}}"
  wait
  ;;
crash)
  for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "line $i before the crash"; done
  echo "fatal: something broke" >&2
  exit 3
  ;;
argv)
  # Prints every argument after the mode, one per line, as the agent received it.
  shift
  for a in "$@"; do printf 'arg: %s\n' "$a"; done
  echo '{"result": {"status": "ok", "summary": "printed my arguments"}}'
  ;;
slow)
  echo '{"event": {"stage": "work", "message": "taking my time", "pct": 10}}'
  sleep 1
  echo '{"result": {"status": "ok", "summary": "slow but done"}}'
  ;;
listen)
  # Steered by consumer control: says which model and why it started, then prints
  # every line it reads on stdin until a chat says "finish".
  echo "{\"event\": {\"stage\": \"listening\", \"model\": \"${2:-}\", \"control\": \"${HIVE_CONTROL:-}\"}}"
  while read -r line; do
    echo "got: $line"
    case "$line" in
    *'"message":"finish"'*)
      echo "{\"result\": {\"status\": \"ok\", \"summary\": \"finished with model ${2:-}\"}}"
      exit 0
      ;;
    esac
  done
  ;;
mute)
  # Never prints a protocol line: it cannot be sent chat.
  echo "working quietly, model ${2:-}, control ${HIVE_CONTROL:-none}"
  sleep 60
  ;;
flood)
  for i in $(seq 1 2000); do echo "flood $i"; done
  echo '{"result": {"status": "ok", "summary": "flooded"}}'
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 2
  ;;
esac

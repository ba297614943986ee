#!/bin/bash
# steamcmd.sh of the left4me SteamCMD stand-in, modelled on the wrapper in Valve's
# steamcmd_linux.tar.gz: STEAMROOT is this script's directory, the client is
# $STEAMROOT/linux32/steamcmd with linux32 on LD_LIBRARY_PATH, and exit status 42
# ("restart me", after the client updated itself) runs it again.

STEAMROOT="$(cd "${0%/*}" && echo "$PWD")"
STEAMCMD=$(basename "$0" .sh)

PLATFORM=linux32
STEAMEXE="${STEAMROOT}/${PLATFORM}/${STEAMCMD}"
export LD_LIBRARY_PATH="$STEAMROOT/$PLATFORM:$LD_LIBRARY_PATH"

ulimit -n 2048

MAGIC_RESTART_EXITCODE=42

$DEBUGGER "$STEAMEXE" "$@"
STATUS=$?

if [ $STATUS -eq $MAGIC_RESTART_EXITCODE ]; then
    exec "$0" "$@"
fi
exit $STATUS

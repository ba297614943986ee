//! Making `game/steamcmd/steamcmd.sh` exist (to be written).

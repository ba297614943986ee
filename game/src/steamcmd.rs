//! What SteamCMD is told and what its output means (to be written).

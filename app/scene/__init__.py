"""The scene a camera sees, beyond one frame's boxes: the object tracker, zones and lines, the motion gate, and the
label events (appeared, changed, cleared) computed from counts held over frames."""

"""Event clips: each camera's encoded packets kept in a ring (ring; raw sources' frames encoded into it, encoder),
the clip each tracked object belongs to named as its events go out (planner), remuxed into MP4 files around the
objects' lives (recorder, writer), the folder kept within its budget (retention) and listed for serving (listing).
The video is read once: a camera's own H.264 is kept as the source demuxes it, never decoded or encoded again for a
clip."""

"""Event clips: each camera's encoded packets kept in a ring (ring), remuxed into MP4 files around tracked objects'
lives (recorder, writer), and the folder of clips kept within its budget (retention). The video is read once: the
packets are those the source decodes for inference, never decoded or encoded again for a clip."""

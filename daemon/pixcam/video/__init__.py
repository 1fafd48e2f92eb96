"""Video in and out: sources, MJPG decoding, sinks, V4L2 devices, on-demand, the keeper."""

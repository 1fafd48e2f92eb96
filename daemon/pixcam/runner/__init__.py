"""The runner: the live stream's threads, pacing, faults and status around the frame chain."""

"""The frame chain: one frame in, one frame out, no threads: segment, refine, compose, parts."""

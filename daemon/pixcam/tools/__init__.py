"""The tools: doctor, set-up, `pixcam segment` and the benches behind `pixcam bench`."""

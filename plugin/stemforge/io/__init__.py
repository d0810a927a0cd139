"""Files in and out: finding and reading inputs, formats, atomic writes, DAW sessions."""

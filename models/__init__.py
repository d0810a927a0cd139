"""The model sources: the networks (masknet), the presets, the training data (corpus, real,
real_more, sources, band_validation), training (train) and the fixtures, imported as
`models.<name>` by build.py, bench/ and the tests; run a module with `python -m models.<name>`
from the repository's root."""

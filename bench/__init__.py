"""The benchmark: the real pipeline against a synchronous baseline (``make bench``)."""

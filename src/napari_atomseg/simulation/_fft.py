"""The simulator's FFT thread count: the one setting its FFTs share.

A module of its own that imports nothing: :mod:`.optics` needs it too, and when it lived
in :mod:`.render` (which imports the scene, whose potentials use the optics) the two
modules formed an import ring. Read it at call time, ``_fft.FFT_WORKERS``: the library
generator sets it in each worker process (:func:`.library.simulate_chunk`).
"""

#: threads per FFT (the library generator sets 1 per worker process)
FFT_WORKERS = 2

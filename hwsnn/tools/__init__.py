"""Tools around the flow: the command line, the Python API, the output directory, reports,
benchmarks, Dask.
"""

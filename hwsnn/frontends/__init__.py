"""Frontends: a PyTorch model or a NIR graph, and the data sets, in; the graph that
conversion reads, out.
"""

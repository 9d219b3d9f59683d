"""The board flow: synthesis, place and route, clocks, the host link's client, inference on
boards, and the design-space search.
"""

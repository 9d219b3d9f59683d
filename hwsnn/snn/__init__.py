"""The SNN core: conversion, quantization, the QNet (the contract every later stage reads)
and its integer semantics (the golden model).
"""

"""Errors hwsnn raises for bad input. The CLI prints them as one line and exits non-zero."""


class HwsnnError(Exception):
    """Base class: a problem with the user's input, explained in one line."""


class UnsupportedLayerError(HwsnnError):
    """The model contains a layer or operation that hwsnn cannot convert exactly."""


class CheckpointError(HwsnnError):
    """A checkpoint, program or QNet file is missing, corrupt or does not match the model."""


class ShapeError(HwsnnError):
    """An input tensor has the wrong shape for the model."""


class ParameterError(HwsnnError):
    """An option (time steps, group size, widths, ...) is out of range."""

"""hwsnn: an open hardware generator for spiking neural networks.

A trained PyTorch model becomes a spiking network (IF with soft reset and threshold
balancing, group neurons, temporal-separation inverse-LIF, offset-spike calibration),
quantized to integers (a QNet) with a bit-exact golden model.

    import hwsnn
    conversion = hwsnn.convert(model, example_input, method="gn", group_size=4, timesteps=2)
    conversion.save("build/cnn")
    print(hwsnn.evaluate("build/cnn"))
"""

from .errors import CheckpointError, HwsnnError, ParameterError, ShapeError, UnsupportedLayerError
from .snn.qcfs import QCFS, qcfs, replace_relu
from .snn.qnet import QNet
from .snn.qnet import load as load_qnet
from .tools.api import Conversion, __version__, convert, evaluate, load_model

__all__ = ["convert", "evaluate", "load_model", "load_qnet", "Conversion", "QNet", "QCFS",
           "qcfs", "replace_relu", "HwsnnError", "UnsupportedLayerError", "CheckpointError",
           "ShapeError", "ParameterError", "__version__"]

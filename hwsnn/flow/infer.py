"""Inference on a board through the host link (``hwsnn infer DIR --port PORT``).

``--port golden`` talks to ``GoldenDevice`` instead of a serial port: a software stand-in
for the board that answers IDENTIFY, INFER, INFER_PACKED and STATUS (protocol version 3,
docs/link.md) with the golden model, so host scripts can be tried without hardware.

The samples go out pipelined and packed (``host.Client.infer_many``): the next one streams
in while the board computes the one before.

A design whose weights live in SPRAM (``hwsnn build --weights``) starts without them: when
the board says so, ``infer`` first writes them (LOAD frames, then COMMIT) from the QNet,
laid out as the build that the board reports (``build/*/report.json``) placed them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import HwsnnError
from ..frontends import data
from ..hdl.verilog import fingerprint
from ..snn import golden
from ..snn.qnet import QNet
from ..snn.qnet import load as load_qnet
from . import host


class GoldenDevice:
    """A board emulated by the golden model: ``write`` frames, ``read`` replies. Its INFER
    replies count cycles as the golden model's ideal work of every engine in turn."""

    def __init__(self, net: QNet):
        self.net = net
        self.pixels = int(np.prod(net.input.shape))
        self.parser = host.FrameParser()
        self.out = bytearray()
        self.accepted = self.rejected = self.inferences = self.last_error = 0

    def _error(self, code: int):
        self.rejected += 1
        self.last_error = code
        self.out += host.encode_frame(host.CMD_ERROR, bytes([code]))

    def write(self, data: bytes) -> int:
        crc_before = self.parser.crc_errors
        for frame in self.parser.feed(bytes(data)):
            self._answer(frame)
        for _ in range(self.parser.crc_errors - crc_before):
            self._error(host.ERR_CRC)
        return len(data)

    def _answer(self, frame):
        cmd, payload = frame.cmd, frame.payload
        need = {host.CMD_IDENTIFY: 0, host.CMD_STATUS: 0, host.CMD_INFER: self.pixels,
                host.CMD_INFER_PACKED: None}
        if cmd not in need:
            return self._error(host.ERR_COMMAND)
        if cmd == host.CMD_INFER_PACKED:
            if not 1 <= len(payload) <= min(2 * self.pixels, host.MAX_LEN):
                return self._error(host.ERR_LENGTH)
            payload = host.unpack_zero_runs(payload, self.pixels)
            if payload is None:
                return self._error(host.ERR_ENCODING)
        elif len(payload) != need[cmd]:
            return self._error(host.ERR_LENGTH)
        self.accepted += 1
        if cmd == host.CMD_IDENTIFY:
            body = host.Identity(host.PROTOCOL_VERSION, bytes.fromhex(fingerprint(self.net))[:8],
                                 self.net.classes, self.pixels).encode()
        elif cmd == host.CMD_STATUS:
            body = host.Status(self.accepted, self.rejected, self.inferences,
                               self.last_error).encode()
        else:
            codes = torch.tensor(list(payload), dtype=torch.int64).reshape(
                1, *self.net.input.shape)
            res = golden.run(self.net, codes)
            cycles = int(sum(c.sum() for c in res.cycles.values()))
            body = host.Inference(int(res.predictions[0]), cycles,
                                  tuple(res.readout[0].tolist())).encode()
            self.inferences += 1
        self.out += host.encode_frame(cmd | host.REPLY_BIT, body)

    def read(self, n: int = 1) -> bytes:
        chunk, self.out = bytes(self.out[:n]), self.out[n:]
        return chunk


def stores_for(directory, net: QNet, ident: host.Identity) -> list:
    """The weight stores of the build (in ``directory/build/*/report.json``) whose layout
    the board reports."""
    import json

    from ..hdl.plan import NetworkPlan, layout_id
    from ..hdl.serial import SerialPlan
    seen = []
    for report in sorted(Path(directory).glob("build/*/report.json")):
        try:
            r = json.loads(report.read_text())
            if r.get("arch") == "serial":  # (the processor: its plan's own arguments)
                specs = SerialPlan(net, **r["serial"]["plan"]).stores
            else:
                specs = NetworkPlan(net, r["lanes"], input_lanes=r.get("input_lanes", 0),
                                    loadable=[tuple(k) for k in r.get("loadable", [])]).stores
        except (OSError, ValueError, KeyError, TypeError, HwsnnError):
            continue
        if specs and layout_id(specs) == ident.layout:
            return specs
        seen.append(report.parent.name)
    raise HwsnnError(f"the board needs its weights loaded (layout {ident.layout.hex()}), but "
                     f"no build in {directory}/build has that layout"
                     + (f" (checked: {', '.join(seen)})" if seen else "")
                     + ": rebuild with 'hwsnn build' for this board and flash it")


def _load(client: host.Client, specs, progress: bool) -> int:
    total = sum(s.depth * s.bytes_per_word for s in specs)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="loading weights")

    def step(done, _total):
        if bar is not None:
            bar.n = done
            bar.refresh()
    try:
        return client.load_weights(specs, progress=step)
    finally:
        if bar is not None:
            bar.close()


def load_images(path: str, net: QNet) -> torch.Tensor:
    """Raw images from an .npz (array ``x``) or .npy file, shaped like the model input."""
    x = torch.as_tensor(data.read_arrays(path, ("x",), "--images")["x"].astype(np.float32))
    size = int(np.prod(net.input.shape))
    if x.numel() % size:
        raise HwsnnError(f"{path} holds {x.numel()} values, not a whole number of "
                         f"{tuple(net.input.shape)} images")
    data.check_range(x, (net.input.lo, net.input.hi), f"--images {path}")
    return x.reshape(-1, *net.input.shape)


def build_baud(directory) -> int:
    """The link rate of the newest build in ``directory/build`` (115200 for builds that
    did not record one, or when there is none)."""
    import json

    from .build import DEFAULT_BAUD
    newest = None
    for report in Path(directory).glob("build/*/report.json"):
        try:
            r = json.loads(report.read_text())
            t = report.stat().st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(r, dict) and (newest is None or t > newest[0]):
            newest = (t, r.get("baud") or DEFAULT_BAUD)
    return int(newest[1]) if newest else DEFAULT_BAUD


def infer(directory, port: str, *, baud: int | None = None, samples: int = 10, offset: int = 0,
          images: str | None = None, timeout: float = 2.0, progress: bool = True,
          data_path: str | None = None) -> dict:
    """Send test samples to the board on ``port`` and compare every answer with the golden
    model of the QNet in ``directory``: ``samples`` from ``offset`` of the labelled data
    ``data_path`` (an .npz with arrays x, y, an MNIST folder or
    ``package.module:factory``), else of the network's own test split; or all of
    ``images`` (unlabelled)."""
    if images and data_path:
        raise HwsnnError(f"--data {data_path} and --images {images} cannot be used together: "
                         "give --data for labelled test data, or --images for images "
                         "without labels")
    net = load_qnet(directory)
    if images:
        x, y, what = load_images(images, net), None, images
    else:
        if data_path is None and data.unknown_data(net.metadata):
            raise HwsnnError(f"{directory} was converted without a known data set: give "
                             "labelled test data with --data DATA, or the images to send "
                             "with --images FILE")
        x, y = data.load_for(tuple(net.input.shape), "test", data_path, meta=net.metadata,
                             value_range=(net.input.lo, net.input.hi))
        what = data_path or data.describe(None, data.shipped_for(tuple(net.input.shape),
                                                                 net.metadata))
        if samples < 1 or offset < 0 or offset + samples > len(x):
            raise HwsnnError(f"--samples {samples} from {offset}: the test data has "
                             f"{len(x)} samples")
        x, y = x[offset:offset + samples], y[offset:offset + samples]
    codes = golden.encode(net, x)
    expect = golden.run(net, codes)
    try:
        if baud is None:
            baud = build_baud(directory)
        client = host.Client(GoldenDevice(net)) if port == "golden" else \
            host.Client.open(port, baud=baud, timeout=timeout)
    except OSError as exc:  # pyserial's SerialException is one
        raise HwsnnError(f"cannot open {port}: {exc} (is the board plugged in? 'golden' "
                         "runs a software stand-in)") from None
    ident = client.identify()
    if not ident.matches(fingerprint(net)):
        raise HwsnnError(f"the board on {port} runs model {ident.model_id_hex}, not the "
                         f"QNet in {directory} ({fingerprint(net)[:16]}): build and flash "
                         "that one, or point at the right directory")
    loaded_bytes = 0
    if ident.stores and not client.status().loaded:
        specs = stores_for(directory, net, ident)
        loaded_bytes = _load(client, specs, progress)
    rows = []
    bar = None
    if progress and len(codes) > 1:
        from tqdm import tqdm
        bar = tqdm(total=len(codes), unit="img", desc="inferences")

    def step(done, _total):
        if bar is not None:
            bar.n = done
            bar.refresh()
    t = time.perf_counter()
    try:
        answers = client.infer_many([c.flatten().tolist() for c in codes], packed=True,
                                    progress=step)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t
    for i, r in enumerate(answers):
        want = expect.readout[i].tolist()
        rows.append({"sample": i + (0 if images else offset), "class": r.prediction,
                     "values": list(r.values), "cycles": r.cycles,
                     "label": int(y[i]) if y is not None else None,
                     "matches_golden": list(r.values) == want
                     and r.prediction == int(expect.predictions[i])})
    status = client.status()
    out = {"port": port, "baud": baud, "model_id": ident.model_id_hex, "samples": len(rows),
           "seconds": seconds, "images_per_second": len(rows) / seconds if seconds else None,
           "weights_loaded_bytes": loaded_bytes,
           "results": rows, "golden_mismatches": sum(not r["matches_golden"] for r in rows),
           "status": {"accepted": status.accepted, "rejected": status.rejected,
                      "inferences": status.inferences}}
    if y is not None:
        out["accuracy"] = sum(r["class"] == r["label"] for r in rows) / len(rows)
    out["directory"] = str(Path(directory))
    out["data"] = what
    return out

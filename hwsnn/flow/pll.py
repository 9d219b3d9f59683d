"""Clock synthesis for the board tops: the PLL settings that bring a board's oscillator
closest to (and not above) a target frequency, and the PLL as an Amaranth elaboratable.

iCE40 (``SB_PLL40_CORE``, simple feedback; the limits of the iCE40 family data sheet, as
``icepll`` uses them): the reference divided by DIVR+1 must lie in 10–133 MHz, times
DIVF+1 gives a VCO of 533–1066 MHz, divided by 2^DIVQ (DIVQ 1–6) gives the output; the
loop filter range follows the divided reference.

ECP5 (``EHXPLLL``, feedback from CLKOP): the reference divided by CLKI_DIV (1–128) must
be at least 3.125 MHz, times CLKFB_DIV (1–80) is the output, which times CLKOP_DIV
(1–128) is a VCO of 400–800 MHz.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

from ..errors import ParameterError


@dataclass(frozen=True)
class PllSetting:
    family: str
    input_mhz: float
    output_mhz: float
    params: dict


def _ice40_filter(pfd_mhz: float) -> int:
    for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if pfd_mhz < limit:
            return value
    return 6


def ice40_pll(input_mhz: float, target_mhz: float, accept=None) -> PllSetting:
    best = None
    for divr in range(16):
        pfd = input_mhz / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                out = vco / 2 ** divq
                if out <= target_mhz + 1e-9 and (best is None or out > best[0] + 1e-9) \
                        and (accept is None or accept(out)):
                    best = (out, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                  "FILTER_RANGE": _ice40_filter(pfd)})
    if best is None or best[0] < 16:
        raise ParameterError(f"no iCE40 PLL setting makes at most {target_mhz:g} MHz from "
                             f"{input_mhz:g} MHz (the lowest is 16 MHz)"
                             + (" that the link's baud rate accepts" if accept else ""))
    return PllSetting("ice40", input_mhz, best[0], best[1])


def ecp5_pll(input_mhz: float, target_mhz: float, accept=None) -> PllSetting:
    best = None
    for clki in range(1, 129):
        pfd = input_mhz / clki
        if pfd < 3.125:
            break
        for clkfb in range(1, 81):
            out = pfd * clkfb
            if out > target_mhz + 1e-9:
                break
            for clkop in range(1, 129):
                if 400 <= out * clkop <= 800:
                    if (best is None or out > best[0] + 1e-9) and \
                            (accept is None or accept(out)):
                        best = (out, {"CLKI_DIV": clki, "CLKFB_DIV": clkfb,
                                      "CLKOP_DIV": clkop})
                    break
    if best is None:
        raise ParameterError(f"no ECP5 PLL setting makes at most {target_mhz:g} MHz from "
                             f"{input_mhz:g} MHz"
                             + (" that the link's baud rate accepts" if accept else ""))
    return PllSetting("ecp5", input_mhz, best[0], best[1])


def pll_setting(family: str, input_mhz: float, target_mhz: float,
                accept=None) -> PllSetting:
    """The fastest PLL output at or below ``target_mhz`` from ``input_mhz`` (among those
    for which ``accept(mhz)`` is true, when given)."""
    if family == "ice40":
        return ice40_pll(input_mhz, target_mhz, accept)
    if family == "ecp5":
        return ecp5_pll(input_mhz, target_mhz, accept)
    raise ParameterError(f"no PLL model for the {family} family")


class BoardPll(Elaboratable):
    """Drives ``domain`` (a ``ClockDomain`` the top defines) at ``setting.output_mhz`` from
    the board's clock pin ``pin`` (``platform.request(clock, 0, dir="-")``), held in reset
    until the PLL has locked.
    On iCE40 the PLL sits on the pin's own pad (``SB_PLL40_PAD``: the pad that feeds the
    global clock also hosts the PLL); on ECP5 the pin is buffered into ``EHXPLLL``."""

    def __init__(self, setting: PllSetting, pin, domain: ClockDomain):
        self.setting, self.pin, self.domain = setting, pin, domain

    def elaborate(self, platform):
        m = Module()
        s = self.setting
        cd = self.domain
        lock = Signal()
        if s.family == "ice40":
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE",
                **{f"p_{k}": v for k, v in s.params.items()},
                i_PACKAGEPIN=self.pin.io, i_RESETB=Const(1, 1), i_BYPASS=Const(0, 1),
                o_PLLOUTGLOBAL=cd.clk, o_LOCK=lock)
        else:
            from amaranth.lib import io
            m.submodules.ref = ref = io.Buffer("i", self.pin)
            m.submodules.pll = Instance(
                "EHXPLLL", p_FEEDBK_PATH="CLKOP", p_CLKOP_ENABLE="ENABLED",
                p_CLKI_DIV=s.params["CLKI_DIV"], p_CLKFB_DIV=s.params["CLKFB_DIV"],
                p_CLKOP_DIV=s.params["CLKOP_DIV"], p_CLKOP_CPHASE=s.params["CLKOP_DIV"] - 1,
                p_CLKOP_FPHASE=0,
                i_CLKI=ref.i, i_CLKFB=cd.clk, i_RST=Const(0, 1), i_STDBY=Const(0, 1),
                i_PHASESEL0=Const(0, 1), i_PHASESEL1=Const(0, 1), i_PHASEDIR=Const(0, 1),
                i_PHASESTEP=Const(0, 1), i_PHASELOADREG=Const(0, 1),
                i_PLLWAKESYNC=Const(0, 1), i_ENCLKOP=Const(0, 1),
                o_CLKOP=cd.clk, o_LOCK=lock)
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain=cd.name)
        # nextpnr derives the output's frequency from the PLL's parameters and the pin's
        # own constraint (the board's clock resource).
        return m

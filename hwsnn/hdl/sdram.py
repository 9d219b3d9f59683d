"""An SDR SDRAM controller (docs/sdram.md): the ULX3S's 32 MB beside its ECP5, for the
layer-serial processor's weights and spike planes (issue 20).

    SDRAMController(chip=ULX3S_SDRAM, clock_hz=60e6, ports=3)

``ports`` requesters, each a pair of streams: ``cmd{i}`` (In: one 16-bit word a beat,
read or written at a word address, with byte enables) and ``rdata{i}`` (Out: the words
that port's reads return, in order). ``pins`` (Out) are the chip's signals as a board top
drives them, active high (a board's ``cs``/``ras``/``cas``/``we`` pins are inverted by the
platform); ``ready`` rises once the chip is initialised.

How it works:
- **One word a command, one command a cycle.** The mode register sets a burst of one, and
  the controller issues a READ or WRITE in every cycle it has a request for an open row:
  an SDR SDRAM takes a new column in every cycle (tCCD = 1), so a stream of consecutive
  words runs at one word a cycle with no burst bookkeeping, and a strided or random one
  costs nothing extra while it stays in open rows.
- **A row open in each bank.** Word address = row | bank | column (9 column bits), so a
  stream crosses into the next bank every 512 words; a request to another row of an open
  bank precharges it (after tRAS and tWR) and activates the row (after tRP, tRC, tRRD).
- **Timers, not sequences.** Every datasheet constraint is a down-counter set by the
  command that starts it (per bank: ACTIVE→READ/WRITE tRCD, ACTIVE→PRECHARGE tRAS,
  WRITE→PRECHARGE tWR, PRECHARGE→ACTIVE tRP, ACTIVE→ACTIVE tRC; for the chip: tRRD,
  tRFC, tMRD, and READ→WRITE: the read's data must have left the bus); a command is
  issued in the first cycle its counters allow.
- **Refresh** every tREFI: new requests wait, open banks are precharged, AUTO REFRESH.
- **Reads never block the others.** A port's read is accepted only while its return
  buffer has room for every read it has in flight, so a consumer that stops taking data
  holds up only its own port; ports are served by fixed priority, port 0 first.

Timing: the pins are registered; the chip is clocked by the inverted clock, so it samples
a command half a cycle after the controller's register drives it, and its read data,
driven CL of its cycles later, is registered by the controller at the rising edge half a
cycle after that: a READ decided in cycle k returns its word in cycle k + CL + 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError

__all__ = ["SDRAMChip", "SDRAMTiming", "ULX3S_SDRAM", "SDRAMController", "pin_signature",
           "command_layout"]


@dataclass(frozen=True)
class SDRAMChip:
    """An SDR SDRAM's geometry and datasheet timing (ns, the minimums unless named max)."""

    name: str
    parts: tuple[str, ...]  # the part numbers these values cover
    row_bits: int = 13
    col_bits: int = 9
    bank_bits: int = 2
    dq_bits: int = 16
    t_rcd: float = 20.0  # ACTIVE → READ/WRITE
    t_rp: float = 20.0  # PRECHARGE → ACTIVE / REFRESH
    t_rc: float = 66.0  # ACTIVE → ACTIVE, one bank
    t_ras: float = 45.0  # ACTIVE → PRECHARGE
    t_rrd: float = 15.0  # ACTIVE → ACTIVE, two banks
    t_wr: float = 15.0  # the last write data → PRECHARGE
    t_rfc: float = 70.0  # AUTO REFRESH → any command
    t_mrd_ck: int = 2  # LOAD MODE REGISTER → any command, clocks
    t_refi: float = 7812.5  # a refresh every 64 ms / 8192 rows
    t_init: float = 200_000.0  # power-up: NOPs with the clock running
    init_refreshes: int = 2
    t_ac3: float = 5.4  # the read data's access time from the clock at CAS latency 3
    f_max_cl2: float = 100e6  # the fastest clock at CAS latency 2
    f_max_cl3: float = 166e6

    @property
    def words(self) -> int:
        return 1 << (self.row_bits + self.col_bits + self.bank_bits)

    @property
    def bytes(self) -> int:
        return self.words * self.dq_bits // 8

    def timing(self, clock_hz: float, cas_latency: int | None = None) -> SDRAMTiming:
        """The constraints in cycles of ``clock_hz`` (each rounded up)."""
        if clock_hz > self.f_max_cl3:
            raise ParameterError(f"{clock_hz / 1e6:.1f} MHz is above the {self.name}'s "
                                 f"{self.f_max_cl3 / 1e6:.0f} MHz: lower the clock")
        cl = cas_latency or 3
        if cl not in (2, 3) or (cl == 2 and clock_hz > self.f_max_cl2):
            raise ParameterError(f"CAS latency {cl} does not work at {clock_hz / 1e6:.1f} "
                                 f"MHz on the {self.name}: use 3")
        tck = 1e9 / clock_hz

        def cycles(ns):
            return max(1, math.ceil(ns / tck - 1e-9))

        return SDRAMTiming(
            cl=cl, rcd=cycles(self.t_rcd), rp=cycles(self.t_rp), rc=cycles(self.t_rc),
            ras=cycles(self.t_ras), rrd=cycles(self.t_rrd), wr=cycles(self.t_wr),
            rfc=cycles(self.t_rfc), mrd=self.t_mrd_ck, refi=int(self.t_refi / tck),
            init=cycles(self.t_init))


@dataclass(frozen=True)
class SDRAMTiming:
    """The constraints in clock cycles (a command n cycles after another: n ≥ the value;
    ``refi``: cycles between refreshes, ``init``: cycles of NOPs after power-up)."""

    cl: int
    rcd: int
    rp: int
    rc: int
    ras: int
    rrd: int
    wr: int
    rfc: int
    mrd: int
    refi: int
    init: int
    # READ → WRITE: the read's word (on the bus from the chip's CL-th edge after the READ
    # to the next) must be gone before the controller drives the WRITE's (from half a
    # cycle before the chip's edge): CL + 2 (None)
    turnaround: int | None = None

    def __post_init__(self):
        if self.turnaround is None:
            object.__setattr__(self, "turnaround", self.cl + 2)

    @property
    def read_latency(self) -> int:
        """Cycles from a READ's decision to its word in the controller's register."""
        return self.cl + 2


#: The ULX3S's 32 MB (16 M × 16 bits: 4 banks of 8192 rows of 512 columns). Boards ship
#: with one of several parts; the values are the largest of their datasheets' minimums, so
#: that one controller works with any of them.
ULX3S_SDRAM = SDRAMChip(
    name="ULX3S 32 MB SDRAM",
    parts=("MT48LC16M16A2-6A", "AS4C16M16SA-6", "IS42S16160J-6"))


def pin_signature(chip: SDRAMChip) -> wiring.Signature:
    """The chip's signals, active high, as the controller drives them (a board top inverts
    ``cs``, ``ras``, ``cas`` and ``we`` through the platform's ``PinsN``)."""
    return wiring.Signature({
        "clk_en": Out(1), "cs": Out(1), "ras": Out(1), "cas": Out(1), "we": Out(1),
        "ba": Out(chip.bank_bits), "a": Out(chip.row_bits), "dqm": Out(chip.dq_bits // 8),
        "dq_o": Out(chip.dq_bits), "dq_oe": Out(1), "dq_i": In(chip.dq_bits)})


def command_layout(chip: SDRAMChip) -> data.StructLayout:
    """A request: word ``addr``, ``write``, and for a write its ``data`` and ``bytes``
    (byte enables: 1 writes the byte)."""
    return data.StructLayout({
        "addr": chip.row_bits + chip.bank_bits + chip.col_bits, "write": 1,
        "data": chip.dq_bits, "bytes": chip.dq_bits // 8})


# Commands as (ras, cas, we), with cs asserted.
_ACTIVE, _READ, _WRITE, _PRECHARGE = (1, 0, 0), (0, 1, 0), (0, 1, 1), (1, 0, 1)
_REFRESH, _MODE, _NOP = (1, 1, 0), (1, 1, 1), (0, 0, 0)


class SDRAMController(wiring.Component):
    """See the module. ``read_buffer``: each port's return buffer, in words (enough for a
    word a cycle when at least ``timing.read_latency`` + 2). ``timing``: cycle counts
    other than ``chip.timing(clock_hz)``'s (the tests break one constraint at a time to see
    the chip's model catch it). ``io_registers``: the pins' registers are the FPGA's I/O
    cells' (a board top's ``io.FFBuffer``s), not the controller's: its outputs then come
    straight from its decision and ``pins.dq_i`` is taken as registered; the same cycles
    either way."""

    def __init__(self, *, chip: SDRAMChip = ULX3S_SDRAM, clock_hz: float = 50e6,
                 ports: int = 1, cas_latency: int | None = None, read_buffer: int = 16,
                 timing: SDRAMTiming | None = None, io_registers: bool = False):
        if isinstance(ports, bool) or not isinstance(ports, int) or ports < 1:
            raise ParameterError(f"an SDRAM controller needs at least one port, not {ports!r}")
        self.chip = chip
        self.clock_hz = clock_hz
        self.io_registers = io_registers
        self.timing = timing or chip.timing(clock_hz, cas_latency)
        self.ports = ports
        self.read_buffer = read_buffer
        if read_buffer < 2:
            raise ParameterError(f"read_buffer={read_buffer}: at least 2 words")
        members = {"pins": Out(pin_signature(chip)), "ready": Out(1)}
        for i in range(ports):
            members[f"cmd{i}"] = In(stream.Signature(command_layout(chip)))
            members[f"rdata{i}"] = Out(stream.Signature(chip.dq_bits))
        super().__init__(members)

    def cmd(self, i: int):
        return getattr(self, f"cmd{i}")

    def rdata(self, i: int):
        return getattr(self, f"rdata{i}")

    def elaborate(self, platform):
        m = Module()
        chip, tm, n_ports = self.chip, self.timing, self.ports
        banks = 1 << chip.bank_bits
        pins = self.pins

        def timer(limit, name):
            return Signal(range(max(2, limit)), name=name)

        # -- the request at the head: taken from the ports by fixed priority -----------------
        head = Signal(command_layout(chip), name="head")
        head_valid = Signal()
        head_port = Signal(range(max(2, n_ports)))
        col = head.addr[:chip.col_bits]
        bank = head.addr[chip.col_bits:chip.col_bits + chip.bank_bits]
        row = head.addr[chip.col_bits + chip.bank_bits:]

        # which command goes out this cycle (the timers and the bank state follow these)
        do_act, do_read, do_write, do_pre, do_pre_all, do_ref, do_mode = (
            Signal(name=n) for n in ("do_act", "do_read", "do_write", "do_pre",
                                     "do_pre_all", "do_ref", "do_mode"))
        issued = Signal()  # the head's READ or WRITE
        m.d.comb += issued.eq(do_read | do_write)

        # Reads in flight or waiting in a port's buffer: a read is taken only when it fits.
        outstanding = [Signal(range(self.read_buffer + 1), name=f"outstanding{i}")
                       for i in range(n_ports)]
        buffers = []
        for i in range(n_ports):
            m.submodules[f"rbuf{i}"] = buf = fifo.SyncFIFOBuffered(
                width=chip.dq_bits, depth=self.read_buffer)
            buffers.append(buf)
            rd = self.rdata(i)
            m.d.comb += [rd.valid.eq(buf.r_rdy), rd.payload.eq(buf.r_data),
                         buf.r_en.eq(rd.ready)]
        eligible = [self.cmd(i).valid & (self.cmd(i).payload.write
                                         | (outstanding[i] < self.read_buffer))
                    for i in range(n_ports)]
        refresh_due = Signal()  # a refresh is owed: new requests wait
        grant = Signal(range(max(2, n_ports)))
        any_eligible = Signal()
        for i in reversed(range(n_ports)):
            with m.If(eligible[i]):
                m.d.comb += [grant.eq(i), any_eligible.eq(1)]
        accept = Signal()
        m.d.comb += accept.eq((~head_valid | issued) & any_eligible & self.ready
                              & ~refresh_due)
        for i in range(n_ports):
            m.d.comb += self.cmd(i).ready.eq(accept & (grant == i))
        with m.If(accept):
            m.d.sync += [head_valid.eq(1), head_port.eq(grant),
                         head.eq(Array(self.cmd(i).payload for i in range(n_ports))[grant])]
        with m.Elif(issued):
            m.d.sync += head_valid.eq(0)
        for i in range(n_ports):
            up = accept & (grant == i) & ~self.cmd(i).payload.write
            down = self.rdata(i).valid & self.rdata(i).ready
            m.d.sync += outstanding[i].eq(outstanding[i] + up - down)

        # -- the command decided this cycle, registered onto the pins ------------------------
        cmd = Signal(3)  # (ras, cas, we)
        c_ba = Signal(chip.bank_bits)
        c_a = Signal(chip.row_bits)
        c_dq = Signal(chip.dq_bits)
        c_oe = Signal()
        c_dqm = Signal(chip.dq_bits // 8)

        def command(code, strobe, *, ba=None, a=None):
            ras, cas, we = code
            m.d.comb += [cmd.eq(Cat(Const(ras, 1), Const(cas, 1), Const(we, 1))),
                         strobe.eq(1)]
            if ba is not None:
                m.d.comb += c_ba.eq(ba)
            if a is not None:
                m.d.comb += c_a.eq(a)

        # (registered here, or by the I/O cells that ``io_registers`` says hold them)
        pin_domain = m.d.comb if self.io_registers else m.d.sync
        pin_domain += [pins.cs.eq(1), pins.ras.eq(cmd[0]), pins.cas.eq(cmd[1]),
                     pins.we.eq(cmd[2]), pins.ba.eq(c_ba), pins.a.eq(c_a),
                     pins.dq_o.eq(c_dq), pins.dq_oe.eq(c_oe), pins.dqm.eq(c_dqm),
                     pins.clk_en.eq(1)]

        # -- timers: a command may go out once its counters are 0 ----------------------------
        t_rcd = [timer(tm.rcd, f"t_rcd{b}") for b in range(banks)]
        t_pre = [timer(max(tm.ras, tm.wr), f"t_pre{b}") for b in range(banks)]
        t_act = [timer(max(tm.rc, tm.rp), f"t_act{b}") for b in range(banks)]
        t_rrd = timer(tm.rrd, "t_rrd")
        t_cmd = timer(max(tm.rfc, tm.mrd), "t_cmd")  # tRFC, tMRD: every command waits
        t_turn = timer(tm.turnaround, "t_turn")  # READ → WRITE
        is_open = Signal(banks)
        rows = [Signal(chip.row_bits, name=f"row{b}") for b in range(banks)]
        this = [bank == b for b in range(banks)]
        starts = {id(t_rrd): [(do_act, tm.rrd)],
                  id(t_cmd): [(do_ref, tm.rfc), (do_mode, tm.mrd)],
                  id(t_turn): [(do_read, tm.turnaround)]}
        for b in range(banks):
            starts[id(t_rcd[b])] = [(do_act & this[b], tm.rcd)]
            starts[id(t_pre[b])] = [(do_act & this[b], tm.ras), (do_write & this[b], tm.wr)]
            starts[id(t_act[b])] = [(do_act & this[b], tm.rc), (do_pre & this[b], tm.rp),
                                    (do_pre_all, tm.rp)]
        # A timer restarted by a command holds the longer of what is left and the new wait
        # (a command n cycles later is allowed when it reads 0: it is set to n − 1).
        for t in [*t_rcd, *t_pre, *t_act, t_rrd, t_cmd, t_turn]:
            nxt = Mux(t == 0, 0, t - 1)
            for when, cycles in starts[id(t)]:
                nxt = Mux(when & (cycles - 1 > nxt), cycles - 1, nxt)
            m.d.sync += t.eq(nxt)
        with m.If(do_act):
            m.d.sync += [is_open.bit_select(bank, 1).eq(1), Array(rows)[bank].eq(row)]
        with m.If(do_pre):
            m.d.sync += is_open.bit_select(bank, 1).eq(0)
        with m.If(do_pre_all):
            m.d.sync += is_open.eq(0)

        # -- read returns: a tag a cycle; the word is in dq_in read_latency cycles on --------
        lat = tm.read_latency
        tags = [Signal(range(max(2, n_ports)), name=f"tag{n}") for n in range(lat)]
        tvalid = Signal(lat)
        dq_in = Signal(chip.dq_bits)
        pin_domain += dq_in.eq(pins.dq_i)
        m.d.sync += [tvalid.eq(Cat(do_read, tvalid[:-1])),
                     tags[0].eq(head_port)]
        m.d.sync += [tags[n + 1].eq(tags[n]) for n in range(lat - 1)]
        for i, buf in enumerate(buffers):
            m.d.comb += [buf.w_data.eq(dq_in), buf.w_en.eq(tvalid[-1] & (tags[-1] == i))]

        # -- refresh: one owed every tREFI, paid by each AUTO REFRESH -------------------------
        refi = Signal(range(tm.refi))
        owed = Signal(4)
        tick = Signal()
        m.d.comb += [tick.eq(self.ready & (refi == tm.refi - 1)), refresh_due.eq(owed != 0)]
        with m.If(self.ready):
            m.d.sync += refi.eq(Mux(tick, 0, refi + 1))
        m.d.sync += owed.eq(owed + tick - (do_ref & self.ready))  # (not the power-up's)

        closable = Signal()  # every open bank may be precharged
        m.d.comb += closable.eq(Cat(*(~is_open[b] | (t_pre[b] == 0)
                                      for b in range(banks))).all())
        all_idle = Signal()  # every bank closed for tRP: a refresh or a mode may go
        m.d.comb += all_idle.eq((is_open == 0) & Cat(*(t == 0 for t in t_act)).all())
        a10 = 1 << 10

        with m.FSM(name="sdram"):
            with m.State("POWER_UP"):  # NOPs for tINIT
                wait = Signal(range(tm.init + 1))
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == tm.init):
                    command(_PRECHARGE, do_pre_all, a=a10)
                    m.next = "INIT_REFRESH"
            n_ref = Signal(range(chip.init_refreshes + 1))
            with m.State("INIT_REFRESH"):
                with m.If(all_idle & (t_cmd == 0)):
                    command(_REFRESH, do_ref)
                    m.d.sync += n_ref.eq(n_ref + 1)
                    with m.If(n_ref == chip.init_refreshes - 1):
                        m.next = "MODE"
            with m.State("MODE"):
                with m.If(t_cmd == 0):
                    # a burst of one, sequential; the CAS latency; writes as programmed
                    command(_MODE, do_mode, ba=0, a=tm.cl << 4)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.ready.eq(1)
                hit = Signal()
                m.d.comb += hit.eq(is_open.bit_select(bank, 1) & (Array(rows)[bank] == row))
                b_rcd = Array(t == 0 for t in t_rcd)[bank]
                b_pre = Array(t == 0 for t in t_pre)[bank]
                b_act = Array(t == 0 for t in t_act)[bank]
                with m.If(t_cmd != 0):
                    pass
                with m.Elif(refresh_due):
                    with m.If(is_open != 0):
                        with m.If(closable):
                            command(_PRECHARGE, do_pre_all, a=a10)
                    with m.Elif(all_idle):
                        command(_REFRESH, do_ref)
                with m.Elif(head_valid):
                    with m.If(hit):
                        with m.If(head.write):
                            with m.If(b_rcd & (t_turn == 0)):
                                command(_WRITE, do_write, ba=bank, a=col)
                                m.d.comb += [c_dq.eq(head.data), c_oe.eq(1),
                                             c_dqm.eq(~head.bytes)]
                        with m.Elif(b_rcd):
                            command(_READ, do_read, ba=bank, a=col)
                    with m.Elif(is_open.bit_select(bank, 1)):  # another row: close it
                        with m.If(b_pre):
                            command(_PRECHARGE, do_pre, ba=bank, a=0)
                    with m.Elif(b_act & (t_rrd == 0)):
                        command(_ACTIVE, do_act, ba=bank, a=row)
        return m

// hwsnn_sdram_model: a behavioural model of a JEDEC single-data-rate SDRAM (as the ULX3S's
// 32 MB x16 part: 4 banks x 8192 rows x 512 columns x 16 bits, e.g. Micron MT48LC16M16A2 or
// Alliance AS4C16M16SA) that stores data, plays reads back at the CAS latency and checks the
// datasheet's timing and command rules. Written from the datasheet semantics for testing a
// controller against; Verilog-2005, runs in Icarus 11 and Verilator 5.
//
// Clock: everything happens at the rising edge of clk (the chip's CLK pin). In the intended
// testbench clk is the controller's clock inverted, so that the controller's outputs, which
// change at its own rising edge, are sampled here half a cycle later. Time is counted in
// edges: "now" advances by one per rising edge, and a rule of T ps holds when
// (edges between the two commands) * TCK_PS >= T.
//
// Data bus: split instead of an inout (no tristate for Verilator). The controller drives
// dq_in when dq_oe is high; the chip drives dq_out when dq_drive is high. A READ registered at
// edge r with CAS latency CL drives its first word from edge r+CL (nonblocking, right after
// the edge) to edge r+CL+1, then the next word of the burst, and so on. Write data is taken
// from dq_in at the WRITE's edge and the edges after it (write DQM latency 0); read DQM
// latency is 2 (dqm high at edge e masks the word driven from edge e+2). A word whose byte
// lanes are all masked is not driven (dq_drive low); a word with some lanes masked is driven
// with those lanes unknown (x in Icarus).
//
// What is checked (each violation prints "SDRAM model: <rule> violated: ..." with the bank,
// the command, and the time elapsed against the time required; it increments `violations`;
// with FATAL=1 it ends the simulation with $fatal). The rule names:
//   power-up        a command (anything but INHIBIT/NOP) before T_INIT_PS of CKE high
//   init sequence   the first command not PRECHARGE ALL; ACTIVE/READ/WRITE before
//                   PRECHARGE ALL, INIT_REFRESHES AUTO REFRESHes and a LOAD MODE REGISTER
//                   (refreshes and LMR in either order)
//   CKE             CKE low after the first command (power-down, self refresh and clock
//                   suspend are not modelled); reported once per low stretch
//   tRCD tRP tRC tRAS tRRD tWR tRFC tMRD   the minimum delays, per bank where they are
//   tRAS max        a row open longer than T_RAS_MAX_PS (reported once per activation)
//   refresh rate    more than MAX_POSTPONED refreshes owed (one owed every T_REFI_PS after
//                   initialisation; each AUTO REFRESH pays one, up to MAX_POSTPONED pulled
//                   in ahead); reported once each time the debt goes over the limit
//   bank state      ACTIVE to a bank with a row open; READ/WRITE to a bank without one;
//                   AUTO REFRESH or LOAD MODE REGISTER with a bank not idle
//   auto-precharge  READ/WRITE/ACTIVE/PRECHARGE to a bank during its burst with auto
//                   precharge; BURST TERMINATE of such a burst; auto precharge on a
//                   full-page burst
//   column range    a READ/WRITE address with bits set above COL_BITS (A10 aside): the
//                   chip ignores them, so a controller setting them has the wrong column
//   mode register   a reserved burst length, full page with interleaved bursts, a CAS
//                   latency outside 2..CL_MAX, a reserved operating mode (A8:A7 != 0)
//   write data      a write burst word with a byte lane unmasked while the controller does
//                   not drive dq (the chip would store a floating bus)
//   bus contention  dq_oe high at edge e while the chip drove after edge e-1 or starts
//                   driving at edge e
//   command         X or Z on a command pin after the first command (Icarus only)
// tRFC and tMRD hold for every command but NOP/INHIBIT (the datasheet allows only NOPs while
// refreshing or accessing the mode register). Precharging an idle bank is a NOP for it.
//
// Simplifications (behaviour where the datasheets leave a choice):
// - Bursts: lengths 1, 2, 4, 8 and full page (the page wraps around until BURST TERMINATE,
//   another READ/WRITE or a PRECHARGE of the bank), sequential and interleaved (2, 4, 8)
//   order; write burst mode A9=1 (single location) writes one word and reads bursts.
// - The column access of a burst word happens at the edge its data is taken (write) or
//   CL edges before it is driven (read). READ/WRITE/BURST TERMINATE or a PRECHARGE of the
//   burst's bank at edge n ends the burst there: no word is accessed at n or later, so a
//   truncated read's last word is driven from n+CL-1 (the datasheet's "CL-1 before the last
//   desired data"), a truncated write's last stored word is the one taken at n-1. A WRITE
//   at edge n also cancels read words due after edge n (the word due at n is still driven
//   unless DQM at n-2 masked it, which is why the datasheet asks for DQM two edges before).
// - Auto precharge: the bank's precharge starts (and tRP counts from) the first edge with no
//   access left: for a READ burst the edge after its last column access (= the last data
//   edge minus CL-1), for a WRITE burst tWR after its last data edge (the first edge p with
//   (p - last) * TCK_PS >= T_WR_PS; Micron's auto-precharge tWR of "1 CLK + 7 ns" is taken as
//   T_WR_PS); a burst interrupted by a READ/WRITE to another bank at edge n starts it at n
//   (read) or tWR after n (write, as Micron's figures draw it). In every case no earlier
//   than tRAS after the ACTIVE (the datasheet's "earliest valid stage ... without violating
//   tRAS(MIN)"), so auto precharge never violates tRAS; tRC and tRP still bind the next
//   ACTIVE.
// - tWR counts from the last write word that stored at least one byte lane (DQM-masked
//   trailing words do not count, as the datasheet's "last desired input data").
// - The read and write counters count words moved: read words driven (at least one lane
//   unmasked) and write words stored (at least one lane unmasked).
// - The power-up delay counts from the first rising edge with CKE high; CKE low before
//   the first command is allowed and ignored.
// - After a violation the model goes on: a READ/WRITE to a bank without an open row (or in
//   its auto-precharge burst) moves no data, an ACTIVE to a bank with a row open opens the
//   new row, commands while CKE is low are ignored.
// - Reads of words never written return what the array holds (0 in Verilator, x in Icarus,
//   or the INIT_FILE image).
//
// Parameters need ROW_BITS >= 11 (A10 is the auto-precharge / all-banks bit of the address
// bus, whose width is ROW_BITS) and COL_BITS <= 10: test small memories with few columns or
// banks, not few rows.
// A behavioural model: state lives in blocking assignments inside one clocked process.
/* verilator lint_off BLKSEQ */
/* verilator lint_off DECLFILENAME */
module hwsnn_sdram_model #(
    parameter ROW_BITS = 13, parameter COL_BITS = 9, parameter BANK_BITS = 2,
    parameter DQ_BITS = 16,           // 16 only is fine (2 byte lanes, dqm[1:0])
    parameter TCK_PS = 16000,         // the clock period the model is run at
    parameter T_RCD_PS = 18000, parameter T_RP_PS = 18000, parameter T_RC_PS = 60000,
    parameter T_RAS_PS = 42000, parameter T_RAS_MAX_PS = 120000000,
    parameter T_RRD_PS = 12000, parameter T_WR_PS = 12000, parameter T_RFC_PS = 66000,
    parameter T_MRD_CK = 2,
    parameter T_REFI_PS = 7812500,    // 64 ms / 8192 rows
    parameter MAX_POSTPONED = 8,      // refreshes that may be owed at any time
    parameter T_INIT_PS = 100000000,  // 100 us of NOP/INHIBIT with CKE high after power-up
    parameter INIT_REFRESHES = 2,
    parameter CL_MAX = 3,             // CAS latencies accepted: 2 .. CL_MAX
    parameter FATAL = 1,
    parameter INIT_FILE = ""          // $readmemh image (word index = {bank,row,col}), or none
) (
    input  wire clk,                  // the chip's CLK pin: everything happens on its rising edge
    input  wire cke,
    input  wire cs_n, input wire ras_n, input wire cas_n, input wire we_n,
    input  wire [BANK_BITS-1:0] ba,
    input  wire [ROW_BITS-1:0] a,      // A10 = auto-precharge / all banks
    input  wire [DQ_BITS/8-1:0] dqm,
    input  wire [DQ_BITS-1:0] dq_in,   // data the controller drives
    input  wire dq_oe,                 // the controller drives dq in this cycle
    output wire [DQ_BITS-1:0] dq_out,  // data the chip drives
    output wire dq_drive,              // the chip drives dq in this cycle
    output reg  [31:0] violations,
    output reg  [31:0] activates, output reg [31:0] reads, output reg [31:0] writes,
    output reg  [31:0] refreshes       // counters of commands (read/write: data words moved)
);

localparam NB = 1 << BANK_BITS;
localparam LANES = DQ_BITS / 8;
localparam ABITS = BANK_BITS + ROW_BITS + COL_BITS;
localparam [LANES-1:0] ALL_LANES = {LANES{1'b1}};
// "now" starts here, so that a timestamp of 0 (never) lies far in the past.
localparam [63:0] T0 = 64'd1 << 40;
/* verilator lint_off WIDTHEXPAND */
localparam [63:0] TCK = TCK_PS;
// Edges used to schedule an auto precharge (the checks themselves compare picoseconds).
localparam integer N_WR0 = (T_WR_PS + TCK_PS - 1) / TCK_PS;
localparam integer N_WR = N_WR0 < 1 ? 1 : N_WR0;
localparam integer N_RAS0 = (T_RAS_PS + TCK_PS - 1) / TCK_PS;
localparam [63:0] N_WR_CK = N_WR, N_RAS_CK = N_RAS0;
// A row is open too long at the first edge e with (e - t_act) * TCK_PS > T_RAS_MAX_PS.
localparam [63:0] RAS_MAX_CK = T_RAS_MAX_PS / TCK_PS;
/* verilator lint_on WIDTHEXPAND */
localparam [ROW_BITS-1:0] COL_FIELD = (1 << COL_BITS) - 1;
localparam [ROW_BITS-1:0] A10 = 1 << 10;
localparam [ROW_BITS-1:0] COL_JUNK = ~(COL_FIELD | A10);

// Commands: {cs_n, ras_n, cas_n, we_n}; cs_n high is INHIBIT.
localparam [3:0] C_LMR = 4'b0000, C_REF = 4'b0001, C_PRE = 4'b0010, C_ACT = 4'b0011,
                 C_WR = 4'b0100, C_RD = 4'b0101, C_BST = 4'b0110, C_NOP = 4'b0111;

reg [DQ_BITS-1:0] mem [0:(1 << ABITS) - 1];

// Time and per-bank state.
reg [63:0] now;
reg [NB-1:0] open;         // a row is open (ACTIVE, no PRECHARGE or auto precharge yet)
reg [NB-1:0] ap_busy;      // a burst with auto precharge is running in the bank
reg [NB-1:0] ras_told;     // tRAS max already reported for this activation
reg [ROW_BITS-1:0] row [0:NB-1];
reg [63:0] t_act [0:NB-1];    // last ACTIVE
reg [63:0] t_pre [0:NB-1];    // start of the last precharge (may lie ahead: auto precharge)
reg [63:0] t_wlast [0:NB-1];  // last write word stored
reg [63:0] ras_due [0:NB-1];  // first edge at which the open row violates tRAS max
reg [63:0] t_act_any, t_ref, t_lmr, t_power;
reg [BANK_BITS-1:0] b_last_act;  // the bank of the last ACTIVE

// Mode register.
reg [2:0] cl;
reg [2:0] bl_code;
reg interleaved, single_write;

// Initialisation.
reg powered, any_cmd, init_pre, lmr_done, init_done;
integer init_refs;

// Refresh debt.
reg [63:0] refi_acc;
integer owed;
reg owed_told, cke_told;

// The burst in progress (one at a time: the bus is shared by the banks).
reg b_on, b_write, b_ap, b_full, b_inter;
reg [BANK_BITS-1:0] b_bank;
reg [COL_BITS-1:0] b_start, b_mask;
integer b_i, b_len;

// Read data on its way out: slot k is driven k+1 edges from now.
reg [DQ_BITS-1:0] pd [0:CL_MAX-1];
reg [CL_MAX-1:0] pv;
reg [LANES-1:0] dqm_q1, dqm_q2;   // dqm sampled one and two edges ago
reg [DQ_BITS-1:0] out_d;
reg out_v;

assign dq_out = out_d;
assign dq_drive = out_v;

integer i;
initial begin
    if (ROW_BITS < 11 || COL_BITS > 10 || COL_BITS < 1 || DQ_BITS % 8 != 0 || CL_MAX < 2
            || CL_MAX > 7) begin
        $display("SDRAM model: unsupported parameters: ROW_BITS=%0d (>= 11: A10 is on the address bus), COL_BITS=%0d (1..10), DQ_BITS=%0d (bytes), CL_MAX=%0d (2..7)",
                 ROW_BITS, COL_BITS, DQ_BITS, CL_MAX);
        $finish;
    end
    now = T0;
    open = 0; ap_busy = 0; ras_told = 0;
    for (i = 0; i < NB; i = i + 1) begin
        row[i] = 0; t_act[i] = 0; t_pre[i] = 0; t_wlast[i] = 0; ras_due[i] = 0;
    end
    t_act_any = 0; t_ref = 0; t_lmr = 0; t_power = 0; b_last_act = 0;
    cl = 3'd2; bl_code = 3'd0; interleaved = 1'b0; single_write = 1'b0;
    powered = 1'b0; any_cmd = 1'b0; init_pre = 1'b0; lmr_done = 1'b0; init_done = 1'b0;
    init_refs = 0;
    refi_acc = 0; owed = 0; owed_told = 1'b0; cke_told = 1'b0;
    b_on = 1'b0; b_write = 1'b0; b_ap = 1'b0; b_full = 1'b0; b_inter = 1'b0;
    b_bank = 0; b_start = 0; b_mask = 0; b_i = 0; b_len = 1;
    for (i = 0; i < CL_MAX; i = i + 1) pd[i] = 0;
    pv = 0; dqm_q1 = 0; dqm_q2 = 0; out_d = 0; out_v = 1'b0;
    violations = 0; activates = 0; reads = 0; writes = 0; refreshes = 0;
    if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
end

// ---------------------------------------------------------------------------------------
// Helpers.

// The timestamp t is less than req_ps ago (or still ahead).
function late(input [63:0] t, input [63:0] req_ps);
    late = now < t || (now - t) * TCK < req_ps;
endfunction

// Picoseconds since t (negative when t lies ahead).
function signed [63:0] ago(input [63:0] t);
    ago = ($signed(now) - $signed(t)) * $signed(TCK);
endfunction

function [DQ_BITS-1:0] lane_bits(input [LANES-1:0] m);
    integer k;
    begin
        for (k = 0; k < LANES; k = k + 1) lane_bits[k * 8 +: 8] = {8{m[k]}};
    end
endfunction

function [8*16-1:0] cmd_name(input [3:0] c);
    case (c)
        C_LMR: cmd_name = "LOAD MODE REG";
        C_REF: cmd_name = "AUTO REFRESH";
        C_PRE: cmd_name = "PRECHARGE";
        C_ACT: cmd_name = "ACTIVE";
        C_WR: cmd_name = "WRITE";
        C_RD: cmd_name = "READ";
        C_BST: cmd_name = "BURST TERMINATE";
        default: cmd_name = "NOP";
    endcase
endfunction

task bump;
    begin
        violations = violations + 1;
        if (FATAL) $fatal(1, "SDRAM model: stopping at the first violation (FATAL=1)");
    end
endtask

// The where of every message: the edge (counted from the first) and the simulation time.
`define SDRAM_AT now - T0, $time

// End the burst in progress; e is the first edge with no access of it. An auto precharge
// starts then (read), tWR after its last word (write ending by itself) or tWR after e
// (write interrupted at e), but not before tRAS has passed since the ACTIVE.
task end_burst(input [63:0] e, input interrupted);
    reg [63:0] p;
    begin
        if (b_on && b_ap) begin
            if (!b_write) p = e;
            else if (interrupted) p = e + N_WR_CK;
            else p = e - 1 + N_WR_CK;
            if (p < t_act[b_bank] + N_RAS_CK) p = t_act[b_bank] + N_RAS_CK;
            t_pre[b_bank] = p;
            ap_busy[b_bank] = 1'b0;
        end
        b_on = 1'b0;
    end
endtask

// A bank must be idle (for AUTO REFRESH and LOAD MODE REGISTER): no row open, no
// auto-precharge burst, tRP since its precharge.
task need_idle(input [3:0] c);
    integer x;
    begin
        for (x = 0; x < NB; x = x + 1) begin
            if (open[x] || ap_busy[x]) begin
                $display("SDRAM model: bank state violated: %0s with bank %0d not idle (row %0d %0s) at edge %0d (time %0t)",
                         cmd_name(c), x, row[x], open[x] ? "open" : "in an auto-precharge burst",
                         `SDRAM_AT);
                bump;
            end else if (late(t_pre[x], T_RP_PS)) begin
                $display("SDRAM model: tRP violated: %0s %0d ps after bank %0d's precharge began, required %0d ps, at edge %0d (time %0t)",
                         cmd_name(c), ago(t_pre[x]), x, T_RP_PS, `SDRAM_AT);
                bump;
            end
        end
    end
endtask

task check_init_done;
    begin
        if (!init_done && init_pre && lmr_done && init_refs >= INIT_REFRESHES) begin
            init_done = 1'b1;
            refi_acc = 0;
            owed = 0;
            owed_told = 1'b0;
        end
    end
endtask

// ---------------------------------------------------------------------------------------
// The rising edge.

wire [3:0] cmd = {cs_n, ras_n, cas_n, we_n};

always @(posedge clk) begin : edge_step
    reg drive;
    reg [DQ_BITS-1:0] data, wmask;
    reg [COL_BITS-1:0] col;
    reg [ABITS-1:0] idx;
    reg [BANK_BITS-1:0] b;
    integer k, x;

    // The read word due at this edge (DQM two edges ago), then the pipeline moves on.
    drive = 1'b0;
    data = out_d;
    if (pv != 0) begin
        if (pv[0] && dqm_q2 != ALL_LANES) begin
            drive = 1'b1;
            data = pd[0];
            if (dqm_q2 != 0)
                data = (pd[0] & ~lane_bits(dqm_q2)) | (lane_bits(dqm_q2) & {DQ_BITS{1'bx}});
            reads = reads + 1;
        end
        for (k = 0; k < CL_MAX - 1; k = k + 1) pd[k] = pd[k + 1];
        pv = pv >> 1;
    end
    if (dq_oe && (out_v || drive)) begin
        $display("SDRAM model: bus contention violated: the controller drives dq at edge %0d while the chip %0s (time %0t)",
                 now - T0, out_v ? "drove it since the edge before" : "starts driving it",
                 $time);
        bump;
    end
    dqm_q2 = dqm_q1;
    dqm_q1 = dqm;

    // tRAS max.
    if (open != 0)
        for (x = 0; x < NB; x = x + 1)
            if (open[x] && !ras_told[x] && now >= ras_due[x]) begin
                $display("SDRAM model: tRAS max violated: bank %0d's row %0d has been open %0d ps, at most %0d ps, at edge %0d (time %0t)",
                         x, row[x], ago(t_act[x]), T_RAS_MAX_PS, `SDRAM_AT);
                bump;
                ras_told[x] = 1'b1;
            end

    // Refresh debt.
    if (init_done) begin
        refi_acc = refi_acc + TCK;
        if (refi_acc >= T_REFI_PS) begin
            refi_acc = refi_acc - T_REFI_PS;
            owed = owed + 1;
        end
    end

    // The command (CKE unknown counts as low).
    if (cke !== 1'b1) begin
        if (any_cmd && !cke_told) begin
            $display("SDRAM model: CKE violated: CKE low (power-down/self-refresh) not modelled%0s, at edge %0d (time %0t)",
                     (!cs_n && !ras_n && !cas_n && we_n) ? " (SELF REFRESH)" : "", `SDRAM_AT);
            bump;
            cke_told = 1'b1;
        end
        if (b_on) end_burst(now, 1'b1);
    end else begin
        cke_told = 1'b0;
        if (!powered) begin
            powered = 1'b1;
            t_power = now;
        end
`ifndef VERILATOR
        if (any_cmd && ^cmd === 1'bx) begin
            $display("SDRAM model: command violated: X or Z on the command pins (cs_n ras_n cas_n we_n = %b) at edge %0d (time %0t)",
                     cmd, `SDRAM_AT);
            bump;
        end else
`endif
        if (!cs_n && cmd != C_NOP) begin
            b = ba;
            if (!any_cmd) begin
                any_cmd = 1'b1;
                if ((now - t_power) * TCK < T_INIT_PS) begin
                    $display("SDRAM model: power-up violated: %0s %0d ps after CKE went high, required %0d ps of NOP/INHIBIT, at edge %0d (time %0t)",
                             cmd_name(cmd), ago(t_power), T_INIT_PS, `SDRAM_AT);
                    bump;
                end
            end
            if (now - t_lmr < T_MRD_CK) begin
                $display("SDRAM model: tMRD violated: %0s %0d cycles after LOAD MODE REGISTER, required %0d, at edge %0d (time %0t)",
                         cmd_name(cmd), now - t_lmr, T_MRD_CK, `SDRAM_AT);
                bump;
            end
            if (late(t_ref, T_RFC_PS)) begin
                $display("SDRAM model: tRFC violated: %0s %0d ps after AUTO REFRESH, required %0d ps, at edge %0d (time %0t)",
                         cmd_name(cmd), ago(t_ref), T_RFC_PS, `SDRAM_AT);
                bump;
            end
            if (!init_pre && cmd != C_PRE) begin
                $display("SDRAM model: init sequence violated: %0s before the first PRECHARGE ALL, at edge %0d (time %0t)",
                         cmd_name(cmd), `SDRAM_AT);
                bump;
            end else if (!init_done && (cmd == C_ACT || cmd == C_RD || cmd == C_WR)) begin
                $display("SDRAM model: init sequence violated: %0s before initialisation is complete (%0d of %0d AUTO REFRESH, mode register %0s), at edge %0d (time %0t)",
                         cmd_name(cmd), init_refs, INIT_REFRESHES,
                         lmr_done ? "loaded" : "not loaded", `SDRAM_AT);
                bump;
            end
            case (cmd)
            C_ACT: begin
                if (open[b] || ap_busy[b]) begin
                    $display("SDRAM model: %0s violated: ACTIVE to bank %0d %0s, at edge %0d (time %0t)",
                             open[b] ? "bank state" : "auto-precharge", b,
                             open[b] ? "with a row open" : "during its auto-precharge burst",
                             `SDRAM_AT);
                    bump;
                end else begin
                    if (late(t_pre[b], T_RP_PS)) begin
                        $display("SDRAM model: tRP violated: ACTIVE to bank %0d %0d ps after its precharge began, required %0d ps, at edge %0d (time %0t)",
                                 b, ago(t_pre[b]), T_RP_PS, `SDRAM_AT);
                        bump;
                    end
                    if (late(t_act[b], T_RC_PS)) begin
                        $display("SDRAM model: tRC violated: ACTIVE to bank %0d %0d ps after its last ACTIVE, required %0d ps, at edge %0d (time %0t)",
                                 b, ago(t_act[b]), T_RC_PS, `SDRAM_AT);
                        bump;
                    end
                end
                if (late(t_act_any, T_RRD_PS)) begin
                    $display("SDRAM model: tRRD violated: ACTIVE to bank %0d %0d ps after the ACTIVE to bank %0d, required %0d ps, at edge %0d (time %0t)",
                             b, ago(t_act_any), b_last_act, T_RRD_PS, `SDRAM_AT);
                    bump;
                end
                if (!ap_busy[b]) begin
                    if (b_on && b_bank == b) end_burst(now, 1'b1);
                    open[b] = 1'b1;
                    row[b] = a;
                    t_act[b] = now;
                    ras_due[b] = now + RAS_MAX_CK + 1;
                    ras_told[b] = 1'b0;
                end
                t_act_any = now;
                b_last_act = b;
                activates = activates + 1;
            end
            C_RD, C_WR: begin
                if ((a & COL_JUNK) != 0) begin
                    $display("SDRAM model: column range violated: %0s to bank %0d with address %0h: bits above the %0d column bits (A10 aside) are set, at edge %0d (time %0t)",
                             cmd_name(cmd), b, a, COL_BITS, `SDRAM_AT);
                    bump;
                end
                if (ap_busy[b]) begin
                    $display("SDRAM model: auto-precharge violated: %0s to bank %0d during its auto-precharge burst, at edge %0d (time %0t)",
                             cmd_name(cmd), b, `SDRAM_AT);
                    bump;
                end else if (!open[b]) begin
                    $display("SDRAM model: bank state violated: %0s to bank %0d, which has no row open, at edge %0d (time %0t)",
                             cmd_name(cmd), b, `SDRAM_AT);
                    bump;
                end else begin
                    if (late(t_act[b], T_RCD_PS)) begin
                        $display("SDRAM model: tRCD violated: %0s to bank %0d %0d ps after its ACTIVE, required %0d ps, at edge %0d (time %0t)",
                                 cmd_name(cmd), b, ago(t_act[b]), T_RCD_PS, `SDRAM_AT);
                        bump;
                    end
                    if (b_on) end_burst(now, 1'b1);
                    if (cmd == C_WR) pv = 0;  // a WRITE cuts off read words due after now
                    b_on = 1'b1;
                    b_write = cmd == C_WR;
                    b_bank = b;
                    b_start = a[COL_BITS-1:0];
                    b_i = 0;
                    b_inter = interleaved;
                    b_full = bl_code == 3'd7 && !(b_write && single_write);
                    b_len = (b_write && single_write) ? 1 : (1 << bl_code);
                    b_mask = b_full ? {COL_BITS{1'b1}} : b_len[COL_BITS-1:0] - 1'b1;
                    b_ap = (a & A10) != 0;
                    if (b_ap) begin
                        if (b_full) begin
                            $display("SDRAM model: auto-precharge violated: %0s with auto precharge to bank %0d in full-page burst mode, at edge %0d (time %0t)",
                                     cmd_name(cmd), b, `SDRAM_AT);
                            bump;
                        end
                        open[b] = 1'b0;
                        ap_busy[b] = 1'b1;
                    end
                end
            end
            C_BST: begin
                if (b_on) begin
                    if (b_ap) begin
                        $display("SDRAM model: auto-precharge violated: BURST TERMINATE of bank %0d's burst with auto precharge, at edge %0d (time %0t)",
                                 b_bank, `SDRAM_AT);
                        bump;
                    end
                    end_burst(now, 1'b1);
                end
            end
            C_PRE: begin
                for (x = 0; x < NB; x = x + 1)
                    if ((a & A10) != 0 || x[BANK_BITS-1:0] == b) begin
                        if (ap_busy[x]) begin
                            $display("SDRAM model: auto-precharge violated: PRECHARGE of bank %0d during its auto-precharge burst, at edge %0d (time %0t)",
                                     x, `SDRAM_AT);
                            bump;
                        end else if (open[x]) begin
                            if (late(t_act[x], T_RAS_PS)) begin
                                $display("SDRAM model: tRAS violated: PRECHARGE of bank %0d %0d ps after its ACTIVE, required %0d ps, at edge %0d (time %0t)",
                                         x, ago(t_act[x]), T_RAS_PS, `SDRAM_AT);
                                bump;
                            end
                            if (late(t_wlast[x], T_WR_PS)) begin
                                $display("SDRAM model: tWR violated: PRECHARGE of bank %0d %0d ps after its last write data, required %0d ps, at edge %0d (time %0t)",
                                         x, ago(t_wlast[x]), T_WR_PS, `SDRAM_AT);
                                bump;
                            end
                            if (b_on && b_bank == x[BANK_BITS-1:0]) end_burst(now, 1'b1);
                            open[x] = 1'b0;
                            t_pre[x] = now;
                        end else if (!init_pre && (a & A10) != 0) begin
                            t_pre[x] = now;  // power-up: the banks' state was unknown
                        end
                    end
                if (!init_pre) begin
                    if ((a & A10) != 0) init_pre = 1'b1;
                    else begin
                        $display("SDRAM model: init sequence violated: the first command is a PRECHARGE of one bank, not PRECHARGE ALL, at edge %0d (time %0t)",
                                 `SDRAM_AT);
                        bump;
                    end
                end
            end
            C_REF: begin
                need_idle(cmd);
                t_ref = now;
                refreshes = refreshes + 1;
                if (init_done) begin
                    if (owed > -MAX_POSTPONED) owed = owed - 1;
                end else if (init_pre) begin
                    init_refs = init_refs + 1;
                    check_init_done;
                end
            end
            C_LMR: begin
                need_idle(cmd);
                t_lmr = now;
                if (a[2:0] == 3'd4 || a[2:0] == 3'd5 || a[2:0] == 3'd6) begin
                    $display("SDRAM model: mode register violated: reserved burst length code %0d (A2:A0), at edge %0d (time %0t)",
                             a[2:0], `SDRAM_AT);
                    bump;
                end else if (a[2:0] == 3'd7 && a[3]) begin
                    $display("SDRAM model: mode register violated: full-page bursts with interleaved order are reserved, at edge %0d (time %0t)",
                             `SDRAM_AT);
                    bump;
                end else begin
                    bl_code = a[2:0];
                    interleaved = a[3];
                end
                if (a[6:4] < 2 || a[6:4] > CL_MAX) begin
                    $display("SDRAM model: mode register violated: CAS latency %0d not supported (2..%0d), at edge %0d (time %0t)",
                             a[6:4], CL_MAX, `SDRAM_AT);
                    bump;
                end else cl = a[6:4];
                if (a[8:7] != 0) begin
                    $display("SDRAM model: mode register violated: reserved operating mode %0d (A8:A7), at edge %0d (time %0t)",
                             a[8:7], `SDRAM_AT);
                    bump;
                end
                single_write = a[9];
                if (init_pre) begin
                    lmr_done = 1'b1;
                    check_init_done;
                end
            end
            default: ;
            endcase
        end
    end

    // The burst's column access at this edge.
    if (b_on) begin
        if (b_full) col = b_start + b_i[COL_BITS-1:0];
        else if (b_inter) col = b_start ^ b_i[COL_BITS-1:0];
        else col = (b_start & ~b_mask) | ((b_start + b_i[COL_BITS-1:0]) & b_mask);
        idx = {b_bank, row[b_bank], col};
        if (b_write) begin
            if (dqm != ALL_LANES) begin
                if (!dq_oe) begin
                    $display("SDRAM model: write data violated: word %0d of a WRITE burst to bank %0d has DQM low but the controller does not drive dq, at edge %0d (time %0t)",
                             b_i, b_bank, `SDRAM_AT);
                    bump;
                end
                wmask = ~lane_bits(dqm);
                mem[idx] = (mem[idx] & ~wmask) | (dq_in & wmask);
                writes = writes + 1;
                t_wlast[b_bank] = now;
            end
        end else begin
            pd[cl - 1] = mem[idx];
            pv[cl - 1] = 1'b1;
        end
        b_i = b_i + 1;
        if (!b_full && b_i == b_len) end_burst(now + 1, 1'b0);
    end

    // Refresh debt over the limit: once each time it goes over.
    if (owed > MAX_POSTPONED) begin
        if (!owed_told) begin
            $display("SDRAM model: refresh rate violated: %0d refreshes owed, at most %0d may be (one every %0d ps), at edge %0d (time %0t)",
                     owed, MAX_POSTPONED, T_REFI_PS, `SDRAM_AT);
            bump;
            owed_told = 1'b1;
        end
    end else owed_told = 1'b0;

    out_v <= drive;
    out_d <= data;
    now = now + 1;
end

`undef SDRAM_AT

endmodule
/* verilator lint_on DECLFILENAME */
/* verilator lint_on BLKSEQ */

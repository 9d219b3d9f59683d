`timescale 1ps/1ps
// A raw-command testbench for hwsnn_sdram_model (sim/sdram_model.v): it plays a script of
// controller cycles from a $readmemh file named by +script=FILE, checks the chip's dq at
// the cycles the script asks, and prints the model's counters at the end:
//   TB DONE cycles=N violations=N activates=N reads=N writes=N refreshes=N mismatches=N
//
// Script word (hex, one a line), bit fields:
//   [15:0]  dq_in            [16] dq_oe          [18:17] dqm
//   [31:19] a (13 bits)      [33:32] ba          [37:34] {cs_n, ras_n, cas_n, we_n}
//   [38]    cke              [39] check dq after this cycle's edge
//   [40]    expected dq_drive                    [56:41] expected dq_out
//   [58:57] byte lanes of dq_out to compare      [59] drive X on ras_n (Icarus)
//   [63] end of the script
//   [95:64] repeat: the word stands for this many cycles (0 is taken as 1)
// Cycle j of the script is the model's rising edge j: its signals are applied half a clock
// before it (at the falling edge of the model's clock, i.e. the controller's rising edge),
// and its check looks at dq_out / dq_drive half a clock after it.
module hwsnn_sdram_model_tb;
parameter ROW_BITS = 11, COL_BITS = 4, BANK_BITS = 2;
parameter TCK_PS = 10000;
parameter T_RCD_PS = 18000, T_RP_PS = 18000, T_RC_PS = 60000, T_RAS_PS = 42000;
parameter T_RAS_MAX_PS = 120000000, T_RRD_PS = 12000, T_WR_PS = 12000, T_RFC_PS = 66000;
parameter T_MRD_CK = 2, T_REFI_PS = 7812500, MAX_POSTPONED = 8, T_INIT_PS = 100000000;
parameter INIT_REFRESHES = 2, CL_MAX = 3, FATAL = 0;
parameter INIT_FILE = "";
parameter SCRIPT_WORDS = 16384;

localparam HALF = TCK_PS / 2;

reg clk, cke, cs_n, ras_n, cas_n, we_n, dq_oe;
reg [BANK_BITS-1:0] ba;
reg [ROW_BITS-1:0] a;
reg [1:0] dqm;
reg [15:0] dq_in;
wire [15:0] dq_out;
wire dq_drive;
wire [31:0] violations, activates, reads, writes, refreshes;

hwsnn_sdram_model #(
    .ROW_BITS(ROW_BITS), .COL_BITS(COL_BITS), .BANK_BITS(BANK_BITS), .DQ_BITS(16),
    .TCK_PS(TCK_PS), .T_RCD_PS(T_RCD_PS), .T_RP_PS(T_RP_PS), .T_RC_PS(T_RC_PS),
    .T_RAS_PS(T_RAS_PS), .T_RAS_MAX_PS(T_RAS_MAX_PS), .T_RRD_PS(T_RRD_PS),
    .T_WR_PS(T_WR_PS), .T_RFC_PS(T_RFC_PS), .T_MRD_CK(T_MRD_CK), .T_REFI_PS(T_REFI_PS),
    .MAX_POSTPONED(MAX_POSTPONED), .T_INIT_PS(T_INIT_PS), .INIT_REFRESHES(INIT_REFRESHES),
    .CL_MAX(CL_MAX), .FATAL(FATAL), .INIT_FILE(INIT_FILE)
) chip (
    .clk(clk), .cke(cke), .cs_n(cs_n), .ras_n(ras_n), .cas_n(cas_n), .we_n(we_n), .ba(ba),
    .a(a), .dqm(dqm), .dq_in(dq_in), .dq_oe(dq_oe), .dq_out(dq_out), .dq_drive(dq_drive),
    .violations(violations), .activates(activates), .reads(reads), .writes(writes),
    .refreshes(refreshes)
);

reg [95:0] script [0:SCRIPT_WORDS-1];
reg [95:0] w;
reg [8*1024-1:0] path;
reg chk, exp_drive;
reg [15:0] exp_data, lanes;
integer idx, left, cycle, mismatches;

task apply;
    begin
        if (left == 0) begin
            w = script[idx];
            idx = idx + 1;
            if (w[63]) begin
                $display("TB DONE cycles=%0d violations=%0d activates=%0d reads=%0d writes=%0d refreshes=%0d mismatches=%0d",
                         cycle, violations, activates, reads, writes, refreshes, mismatches);
                $finish;
            end
            left = w[95:64] == 0 ? 1 : w[95:64];
        end
        left = left - 1;
        dq_in = w[15:0];
        dq_oe = w[16];
        dqm = w[18:17];
        a = w[19 +: ROW_BITS];
        ba = w[32 +: BANK_BITS];
        {cs_n, ras_n, cas_n, we_n} = w[37:34];
        if (w[59]) ras_n = 1'bx;
        cke = w[38];
        chk = w[39];
        exp_drive = w[40];
        exp_data = w[56:41];
        lanes = {{8{w[58]}}, {8{w[57]}}};
    end
endtask

initial begin
    if (!$value$plusargs("script=%s", path)) begin
        $display("TB ERROR: no +script=FILE");
        $finish;
    end
    $readmemh(path, script);
    idx = 0;
    left = 0;
    cycle = 0;
    mismatches = 0;
    clk = 1'b0;
    apply;
    forever begin
        #(HALF) clk = 1'b1;
        #(HALF) clk = 1'b0;
        if (chk && (dq_drive !== exp_drive
                    || (exp_drive && (dq_out & lanes) !== (exp_data & lanes)))) begin
            $display("TB MISMATCH cycle %0d: dq_drive %b dq_out %h, expected %b %h (lanes %h)",
                     cycle, dq_drive, dq_out, exp_drive, exp_data, lanes);
            mismatches = mismatches + 1;
        end
        cycle = cycle + 1;
        apply;
    end
end

endmodule

// DP16KD (ECP5 sysMEM 18 Kbit dual-port block RAM) behavioural model for simulation.
//
// The Yosys shipped with YoWASP declares DP16KD as a black box only, so gate-level runs of
// montpipe's netlists use this model. It follows Lattice's ECP5 memory usage guide and the way
// Yosys maps memories onto the block (share/lattice/brams_map_16kd.v):
//  * the array is 2048 nine-bit units (units 2r and 2r+1 are row r of INITVAL_xx: 16 rows of
//    18 bits in 20-bit fields per parameter);
//  * DATA_WIDTH 1, 2, 4: unit AD[13:3], bits of its low eight picked by AD[2:0]; 9: unit
//    AD[13:3]; 18: units AD[13:4]*2 + 0/1, written where AD[0]/AD[1] (byte enables) are high;
//    36 (the pseudo-dual-port mode: A writes, B reads): units AD[13:5]*4 + 0..3, written where
//    AD[0..3] are high, data {DIB, DIA} in and {DOB, DOA} out;
//  * a port acts on the rising edge of its clock while CE is high and CS matches CSDECODE;
//    writes when WE is high; its read latch takes the addressed word (WRITEMODE "NORMAL": kept
//    during a write; "WRITETHROUGH": the data written; "READBEFOREWRITE": the old word);
//    REGMODE "OUTREG" adds an output register loaded while OCE is high; RST clears the latch
//    and the register, at the clock edge whatever CE (RESETMODE "SYNC") or at once ("ASYNC");
//  * every *MUX parameter may be "INV" to invert its pin.
// Not modelled: GSR after time 0; a read of a word being written through the other port in
// the same cycle (undefined on the silicon: the old word here); with RESETMODE "ASYNC" a port
// held in reset ignores its clock (writes included); timing.
// (docs/gate-level.md; tests/test_sim_dp16kd.py checks it.)

module DP16KD(
    DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4,
    DIA3, DIA2, DIA1, DIA0, ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
    ADA2, ADA1, ADA0, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0, DIB17, DIB16, DIB15, DIB14,
    DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0, CEB,
    OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0, DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11,
    DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0, DOB17, DOB16, DOB15,
    DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1,
    DOB0
);
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8;
    input DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0, ADA13, ADA12;
    input ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2;
    input ADA1, ADA0, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0;
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8;
    input DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0, ADB13, ADB12;
    input ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2;
    input ADB1, ADB0, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0;
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8;
    output DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0, DOB17, DOB16;
    output DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6;
    output DOB5, DOB4, DOB3, DOB2, DOB1, DOB0;

    parameter DATA_WIDTH_A = 18;
    parameter REGMODE_A = "NOREG";
    parameter CSDECODE_A = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter CEAMUX = "CEA";
    parameter OCEAMUX = "OCEA";
    parameter CLKAMUX = "CLKA";
    parameter WEAMUX = "WEA";
    parameter RSTAMUX = "RSTA";
    parameter CSA0MUX = "CSA0";
    parameter CSA1MUX = "CSA1";
    parameter CSA2MUX = "CSA2";
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_B = "NOREG";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_B = "NORMAL";
    parameter CEBMUX = "CEB";
    parameter OCEBMUX = "OCEB";
    parameter CLKBMUX = "CLKB";
    parameter WEBMUX = "WEB";
    parameter RSTBMUX = "RSTB";
    parameter CSB0MUX = "CSB0";
    parameter CSB1MUX = "CSB1";
    parameter CSB2MUX = "CSB2";
    // nextpnr's packed netlist ties unused address and data pins through these: "0", "1",
    // "INV", or the pin itself
    parameter ADA0MUX = "ADA0";
    parameter ADA1MUX = "ADA1";
    parameter ADA2MUX = "ADA2";
    parameter ADA3MUX = "ADA3";
    parameter ADA4MUX = "ADA4";
    parameter ADA5MUX = "ADA5";
    parameter ADA6MUX = "ADA6";
    parameter ADA7MUX = "ADA7";
    parameter ADA8MUX = "ADA8";
    parameter ADA9MUX = "ADA9";
    parameter ADA10MUX = "ADA10";
    parameter ADA11MUX = "ADA11";
    parameter ADA12MUX = "ADA12";
    parameter ADA13MUX = "ADA13";
    parameter ADB0MUX = "ADB0";
    parameter ADB1MUX = "ADB1";
    parameter ADB2MUX = "ADB2";
    parameter ADB3MUX = "ADB3";
    parameter ADB4MUX = "ADB4";
    parameter ADB5MUX = "ADB5";
    parameter ADB6MUX = "ADB6";
    parameter ADB7MUX = "ADB7";
    parameter ADB8MUX = "ADB8";
    parameter ADB9MUX = "ADB9";
    parameter ADB10MUX = "ADB10";
    parameter ADB11MUX = "ADB11";
    parameter ADB12MUX = "ADB12";
    parameter ADB13MUX = "ADB13";
    parameter DIA0MUX = "DIA0";
    parameter DIA1MUX = "DIA1";
    parameter DIA2MUX = "DIA2";
    parameter DIA3MUX = "DIA3";
    parameter DIA4MUX = "DIA4";
    parameter DIA5MUX = "DIA5";
    parameter DIA6MUX = "DIA6";
    parameter DIA7MUX = "DIA7";
    parameter DIA8MUX = "DIA8";
    parameter DIA9MUX = "DIA9";
    parameter DIA10MUX = "DIA10";
    parameter DIA11MUX = "DIA11";
    parameter DIA12MUX = "DIA12";
    parameter DIA13MUX = "DIA13";
    parameter DIA14MUX = "DIA14";
    parameter DIA15MUX = "DIA15";
    parameter DIA16MUX = "DIA16";
    parameter DIA17MUX = "DIA17";
    parameter DIB0MUX = "DIB0";
    parameter DIB1MUX = "DIB1";
    parameter DIB2MUX = "DIB2";
    parameter DIB3MUX = "DIB3";
    parameter DIB4MUX = "DIB4";
    parameter DIB5MUX = "DIB5";
    parameter DIB6MUX = "DIB6";
    parameter DIB7MUX = "DIB7";
    parameter DIB8MUX = "DIB8";
    parameter DIB9MUX = "DIB9";
    parameter DIB10MUX = "DIB10";
    parameter DIB11MUX = "DIB11";
    parameter DIB12MUX = "DIB12";
    parameter DIB13MUX = "DIB13";
    parameter DIB14MUX = "DIB14";
    parameter DIB15MUX = "DIB15";
    parameter DIB16MUX = "DIB16";
    parameter DIB17MUX = "DIB17";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter WID = 0;
    parameter INITVAL_00 = 320'h0;
    parameter INITVAL_01 = 320'h0;
    parameter INITVAL_02 = 320'h0;
    parameter INITVAL_03 = 320'h0;
    parameter INITVAL_04 = 320'h0;
    parameter INITVAL_05 = 320'h0;
    parameter INITVAL_06 = 320'h0;
    parameter INITVAL_07 = 320'h0;
    parameter INITVAL_08 = 320'h0;
    parameter INITVAL_09 = 320'h0;
    parameter INITVAL_0A = 320'h0;
    parameter INITVAL_0B = 320'h0;
    parameter INITVAL_0C = 320'h0;
    parameter INITVAL_0D = 320'h0;
    parameter INITVAL_0E = 320'h0;
    parameter INITVAL_0F = 320'h0;
    parameter INITVAL_10 = 320'h0;
    parameter INITVAL_11 = 320'h0;
    parameter INITVAL_12 = 320'h0;
    parameter INITVAL_13 = 320'h0;
    parameter INITVAL_14 = 320'h0;
    parameter INITVAL_15 = 320'h0;
    parameter INITVAL_16 = 320'h0;
    parameter INITVAL_17 = 320'h0;
    parameter INITVAL_18 = 320'h0;
    parameter INITVAL_19 = 320'h0;
    parameter INITVAL_1A = 320'h0;
    parameter INITVAL_1B = 320'h0;
    parameter INITVAL_1C = 320'h0;
    parameter INITVAL_1D = 320'h0;
    parameter INITVAL_1E = 320'h0;
    parameter INITVAL_1F = 320'h0;
    parameter INITVAL_20 = 320'h0;
    parameter INITVAL_21 = 320'h0;
    parameter INITVAL_22 = 320'h0;
    parameter INITVAL_23 = 320'h0;
    parameter INITVAL_24 = 320'h0;
    parameter INITVAL_25 = 320'h0;
    parameter INITVAL_26 = 320'h0;
    parameter INITVAL_27 = 320'h0;
    parameter INITVAL_28 = 320'h0;
    parameter INITVAL_29 = 320'h0;
    parameter INITVAL_2A = 320'h0;
    parameter INITVAL_2B = 320'h0;
    parameter INITVAL_2C = 320'h0;
    parameter INITVAL_2D = 320'h0;
    parameter INITVAL_2E = 320'h0;
    parameter INITVAL_2F = 320'h0;
    parameter INITVAL_30 = 320'h0;
    parameter INITVAL_31 = 320'h0;
    parameter INITVAL_32 = 320'h0;
    parameter INITVAL_33 = 320'h0;
    parameter INITVAL_34 = 320'h0;
    parameter INITVAL_35 = 320'h0;
    parameter INITVAL_36 = 320'h0;
    parameter INITVAL_37 = 320'h0;
    parameter INITVAL_38 = 320'h0;
    parameter INITVAL_39 = 320'h0;
    parameter INITVAL_3A = 320'h0;
    parameter INITVAL_3B = 320'h0;
    parameter INITVAL_3C = 320'h0;
    parameter INITVAL_3D = 320'h0;
    parameter INITVAL_3E = 320'h0;
    parameter INITVAL_3F = 320'h0;

    localparam integer ASYNC = (RESETMODE == "ASYNC") ? 1 : 0;
    // CSDECODE "0bXYZ": the chip-select value a port answers to
`define DP16KD_CS(p) ((p) == "0b001" ? 1 : (p) == "0b010" ? 2 : (p) == "0b011" ? 3 : (p) == "0b100" ? 4 : (p) == "0b101" ? 5 : (p) == "0b110" ? 6 : (p) == "0b111" ? 7 : 0)
    localparam [2:0] CS_A = `DP16KD_CS(CSDECODE_A);
    localparam [2:0] CS_B = `DP16KD_CS(CSDECODE_B);
`undef DP16KD_CS

    reg [8:0] mem [0:2047];
    reg [319:0] init_rows [0:63];
    integer r;
    initial begin
        init_rows[0] = INITVAL_00;
        init_rows[1] = INITVAL_01;
        init_rows[2] = INITVAL_02;
        init_rows[3] = INITVAL_03;
        init_rows[4] = INITVAL_04;
        init_rows[5] = INITVAL_05;
        init_rows[6] = INITVAL_06;
        init_rows[7] = INITVAL_07;
        init_rows[8] = INITVAL_08;
        init_rows[9] = INITVAL_09;
        init_rows[10] = INITVAL_0A;
        init_rows[11] = INITVAL_0B;
        init_rows[12] = INITVAL_0C;
        init_rows[13] = INITVAL_0D;
        init_rows[14] = INITVAL_0E;
        init_rows[15] = INITVAL_0F;
        init_rows[16] = INITVAL_10;
        init_rows[17] = INITVAL_11;
        init_rows[18] = INITVAL_12;
        init_rows[19] = INITVAL_13;
        init_rows[20] = INITVAL_14;
        init_rows[21] = INITVAL_15;
        init_rows[22] = INITVAL_16;
        init_rows[23] = INITVAL_17;
        init_rows[24] = INITVAL_18;
        init_rows[25] = INITVAL_19;
        init_rows[26] = INITVAL_1A;
        init_rows[27] = INITVAL_1B;
        init_rows[28] = INITVAL_1C;
        init_rows[29] = INITVAL_1D;
        init_rows[30] = INITVAL_1E;
        init_rows[31] = INITVAL_1F;
        init_rows[32] = INITVAL_20;
        init_rows[33] = INITVAL_21;
        init_rows[34] = INITVAL_22;
        init_rows[35] = INITVAL_23;
        init_rows[36] = INITVAL_24;
        init_rows[37] = INITVAL_25;
        init_rows[38] = INITVAL_26;
        init_rows[39] = INITVAL_27;
        init_rows[40] = INITVAL_28;
        init_rows[41] = INITVAL_29;
        init_rows[42] = INITVAL_2A;
        init_rows[43] = INITVAL_2B;
        init_rows[44] = INITVAL_2C;
        init_rows[45] = INITVAL_2D;
        init_rows[46] = INITVAL_2E;
        init_rows[47] = INITVAL_2F;
        init_rows[48] = INITVAL_30;
        init_rows[49] = INITVAL_31;
        init_rows[50] = INITVAL_32;
        init_rows[51] = INITVAL_33;
        init_rows[52] = INITVAL_34;
        init_rows[53] = INITVAL_35;
        init_rows[54] = INITVAL_36;
        init_rows[55] = INITVAL_37;
        init_rows[56] = INITVAL_38;
        init_rows[57] = INITVAL_39;
        init_rows[58] = INITVAL_3A;
        init_rows[59] = INITVAL_3B;
        init_rows[60] = INITVAL_3C;
        init_rows[61] = INITVAL_3D;
        init_rows[62] = INITVAL_3E;
        init_rows[63] = INITVAL_3F;
        for (r = 0; r < 1024; r = r + 1) begin
            mem[2 * r] = init_rows[r / 16][(r % 16) * 20 +: 9];
            mem[2 * r + 1] = init_rows[r / 16][(r % 16) * 20 + 9 +: 9];
        end
        if ((DATA_WIDTH_A != 1 && DATA_WIDTH_A != 2 && DATA_WIDTH_A != 4 && DATA_WIDTH_A != 9
             && DATA_WIDTH_A != 18 && DATA_WIDTH_A != 36) || (DATA_WIDTH_B != 1
             && DATA_WIDTH_B != 2 && DATA_WIDTH_B != 4 && DATA_WIDTH_B != 9
             && DATA_WIDTH_B != 18 && DATA_WIDTH_B != 36)) begin
            $display("DP16KD %m: DATA_WIDTH_A %0d / DATA_WIDTH_B %0d is not 1, 2, 4, 9, 18 or 36",
                     DATA_WIDTH_A, DATA_WIDTH_B);
            $finish;
        end
    end

    // the word at ad for a port of width w (low bits of the result)
    function [35:0] read_word(input [13:0] ad, input integer w);
        reg [8:0] unit;
        begin
            unit = mem[ad[13:3]];
            case (w)
                1: read_word = {35'b0, unit[ad[2:0]]};
                2: read_word = {34'b0, unit[{ad[2:1], 1'b0} +: 2]};
                4: read_word = {32'b0, unit[{ad[2], 2'b0} +: 4]};
                9: read_word = {27'b0, unit};
                18: read_word = {18'b0, mem[{ad[13:4], 1'b1}], mem[{ad[13:4], 1'b0}]};
                default: read_word = {mem[{ad[13:5], 2'b11}], mem[{ad[13:5], 2'b10}],
                                      mem[{ad[13:5], 2'b01}], mem[{ad[13:5], 2'b00}]};
            endcase
        end
    endfunction

    // the word at ad after writing di (byte enables in ad[3:0] at widths 18 and 36)
    function [35:0] merged(input [13:0] ad, input integer w, input [35:0] di);
        reg [35:0] old;
        integer k;
        begin
            old = read_word(ad, w);
            merged = w < 18 ? di : old;
            if (w >= 18)
                for (k = 0; k < w / 9; k = k + 1)
                    if (ad[k]) merged[9 * k +: 9] = di[9 * k +: 9];
            if (w < 18) merged = di & ((36'b1 << w) - 1);
        end
    endfunction

    // (non-blocking: both ports read the array as it was before the edge)
    task write_word(input [13:0] ad, input integer w, input [35:0] di);
        integer k;
        begin
            case (w)
                1: mem[ad[13:3]][ad[2:0]] <= di[0];
                2: mem[ad[13:3]][{ad[2:1], 1'b0} +: 2] <= di[1:0];
                4: mem[ad[13:3]][{ad[2], 2'b0} +: 4] <= di[3:0];
                9: mem[ad[13:3]] <= di[8:0];
                18: for (k = 0; k < 2; k = k + 1)
                        if (ad[k]) mem[{ad[13:4], k[0]}] <= di[9 * k +: 9];
                default: for (k = 0; k < 4; k = k + 1)
                        if (ad[k]) mem[{ad[13:5], k[1:0]}] <= di[9 * k +: 9];
            endcase
        end
    endtask

    // ---- port A ----
`define DP16KD_PIN(mux, pin) ((mux) == "0" ? 1'b0 : (mux) == "1" ? 1'b1 : (mux) == "INV" ? ~(pin) : (pin))
    wire [13:0] ada = {`DP16KD_PIN(ADA13MUX, ADA13), `DP16KD_PIN(ADA12MUX, ADA12), `DP16KD_PIN(ADA11MUX, ADA11), `DP16KD_PIN(ADA10MUX, ADA10), `DP16KD_PIN(ADA9MUX, ADA9), `DP16KD_PIN(ADA8MUX, ADA8), `DP16KD_PIN(ADA7MUX, ADA7), `DP16KD_PIN(ADA6MUX, ADA6), `DP16KD_PIN(ADA5MUX, ADA5), `DP16KD_PIN(ADA4MUX, ADA4), `DP16KD_PIN(ADA3MUX, ADA3), `DP16KD_PIN(ADA2MUX, ADA2), `DP16KD_PIN(ADA1MUX, ADA1), `DP16KD_PIN(ADA0MUX, ADA0)};
    wire [13:0] adb = {`DP16KD_PIN(ADB13MUX, ADB13), `DP16KD_PIN(ADB12MUX, ADB12), `DP16KD_PIN(ADB11MUX, ADB11), `DP16KD_PIN(ADB10MUX, ADB10), `DP16KD_PIN(ADB9MUX, ADB9), `DP16KD_PIN(ADB8MUX, ADB8), `DP16KD_PIN(ADB7MUX, ADB7), `DP16KD_PIN(ADB6MUX, ADB6), `DP16KD_PIN(ADB5MUX, ADB5), `DP16KD_PIN(ADB4MUX, ADB4), `DP16KD_PIN(ADB3MUX, ADB3), `DP16KD_PIN(ADB2MUX, ADB2), `DP16KD_PIN(ADB1MUX, ADB1), `DP16KD_PIN(ADB0MUX, ADB0)};
    wire [17:0] dia = {`DP16KD_PIN(DIA17MUX, DIA17), `DP16KD_PIN(DIA16MUX, DIA16), `DP16KD_PIN(DIA15MUX, DIA15), `DP16KD_PIN(DIA14MUX, DIA14), `DP16KD_PIN(DIA13MUX, DIA13), `DP16KD_PIN(DIA12MUX, DIA12), `DP16KD_PIN(DIA11MUX, DIA11), `DP16KD_PIN(DIA10MUX, DIA10), `DP16KD_PIN(DIA9MUX, DIA9), `DP16KD_PIN(DIA8MUX, DIA8), `DP16KD_PIN(DIA7MUX, DIA7), `DP16KD_PIN(DIA6MUX, DIA6), `DP16KD_PIN(DIA5MUX, DIA5), `DP16KD_PIN(DIA4MUX, DIA4), `DP16KD_PIN(DIA3MUX, DIA3), `DP16KD_PIN(DIA2MUX, DIA2), `DP16KD_PIN(DIA1MUX, DIA1), `DP16KD_PIN(DIA0MUX, DIA0)};
    wire [17:0] dib = {`DP16KD_PIN(DIB17MUX, DIB17), `DP16KD_PIN(DIB16MUX, DIB16), `DP16KD_PIN(DIB15MUX, DIB15), `DP16KD_PIN(DIB14MUX, DIB14), `DP16KD_PIN(DIB13MUX, DIB13), `DP16KD_PIN(DIB12MUX, DIB12), `DP16KD_PIN(DIB11MUX, DIB11), `DP16KD_PIN(DIB10MUX, DIB10), `DP16KD_PIN(DIB9MUX, DIB9), `DP16KD_PIN(DIB8MUX, DIB8), `DP16KD_PIN(DIB7MUX, DIB7), `DP16KD_PIN(DIB6MUX, DIB6), `DP16KD_PIN(DIB5MUX, DIB5), `DP16KD_PIN(DIB4MUX, DIB4), `DP16KD_PIN(DIB3MUX, DIB3), `DP16KD_PIN(DIB2MUX, DIB2), `DP16KD_PIN(DIB1MUX, DIB1), `DP16KD_PIN(DIB0MUX, DIB0)};
    wire clk_a = CLKA ^ (CLKAMUX == "INV");
    wire ce_a = CEA ^ (CEAMUX == "INV");
    wire oce_a = OCEA ^ (OCEAMUX == "INV");
    wire we_a = WEA ^ (WEAMUX == "INV");
    wire rst_a = RSTA ^ (RSTAMUX == "INV");
    wire [2:0] cs_a = {CSA2 ^ (CSA2MUX == "INV"), CSA1 ^ (CSA1MUX == "INV"),
                        CSA0 ^ (CSA0MUX == "INV")};
    wire [13:0] ad_a = ada;
    wire [35:0] di_a = DATA_WIDTH_A == 36 ? {dib, dia}
                                        : {18'b0, dia};
    wire sel_a = cs_a == CS_A;
    reg [35:0] latch_a = 36'b0, out_a = 36'b0;
    wire [35:0] q_a = REGMODE_A == "OUTREG" ? out_a : latch_a;
    generate
        if (ASYNC) begin: async_a
            always @(posedge clk_a or posedge rst_a) begin
                if (rst_a) begin
                    latch_a <= 36'b0;
                    out_a <= 36'b0;
                end else begin
                    if (oce_a) out_a <= latch_a;
                    if (ce_a && sel_a) begin
                        if (!we_a || WRITEMODE_A == "READBEFOREWRITE")
                            latch_a <= read_word(ad_a, DATA_WIDTH_A);
                        else if (WRITEMODE_A == "WRITETHROUGH")
                            latch_a <= merged(ad_a, DATA_WIDTH_A, di_a);
                        if (we_a) write_word(ad_a, DATA_WIDTH_A, di_a);
                    end
                end
            end
        end else begin: sync_a
            always @(posedge clk_a) begin
                if (rst_a) begin
                    latch_a <= 36'b0;
                    out_a <= 36'b0;
                end else if (oce_a)
                    out_a <= latch_a;
                if (ce_a && sel_a) begin
                    if (!rst_a) begin
                        if (!we_a || WRITEMODE_A == "READBEFOREWRITE")
                            latch_a <= read_word(ad_a, DATA_WIDTH_A);
                        else if (WRITEMODE_A == "WRITETHROUGH")
                            latch_a <= merged(ad_a, DATA_WIDTH_A, di_a);
                    end
                    if (we_a) write_word(ad_a, DATA_WIDTH_A, di_a);
                end
            end
        end
    endgenerate

    // ---- port B ----
    wire clk_b = CLKB ^ (CLKBMUX == "INV");
    wire ce_b = CEB ^ (CEBMUX == "INV");
    wire oce_b = OCEB ^ (OCEBMUX == "INV");
    wire we_b = WEB ^ (WEBMUX == "INV");
    wire rst_b = RSTB ^ (RSTBMUX == "INV");
    wire [2:0] cs_b = {CSB2 ^ (CSB2MUX == "INV"), CSB1 ^ (CSB1MUX == "INV"),
                        CSB0 ^ (CSB0MUX == "INV")};
    wire [13:0] ad_b = adb;
    wire [35:0] di_b = DATA_WIDTH_B == 36 ? {dib, dia}
                                        : {18'b0, dib};
    wire sel_b = cs_b == CS_B;
    reg [35:0] latch_b = 36'b0, out_b = 36'b0;
    wire [35:0] q_b = REGMODE_B == "OUTREG" ? out_b : latch_b;
    generate
        if (ASYNC) begin: async_b
            always @(posedge clk_b or posedge rst_b) begin
                if (rst_b) begin
                    latch_b <= 36'b0;
                    out_b <= 36'b0;
                end else begin
                    if (oce_b) out_b <= latch_b;
                    if (ce_b && sel_b) begin
                        if (!we_b || WRITEMODE_B == "READBEFOREWRITE")
                            latch_b <= read_word(ad_b, DATA_WIDTH_B);
                        else if (WRITEMODE_B == "WRITETHROUGH")
                            latch_b <= merged(ad_b, DATA_WIDTH_B, di_b);
                        if (we_b) write_word(ad_b, DATA_WIDTH_B, di_b);
                    end
                end
            end
        end else begin: sync_b
            always @(posedge clk_b) begin
                if (rst_b) begin
                    latch_b <= 36'b0;
                    out_b <= 36'b0;
                end else if (oce_b)
                    out_b <= latch_b;
                if (ce_b && sel_b) begin
                    if (!rst_b) begin
                        if (!we_b || WRITEMODE_B == "READBEFOREWRITE")
                            latch_b <= read_word(ad_b, DATA_WIDTH_B);
                        else if (WRITEMODE_B == "WRITETHROUGH")
                            latch_b <= merged(ad_b, DATA_WIDTH_B, di_b);
                    end
                    if (we_b) write_word(ad_b, DATA_WIDTH_B, di_b);
                end
            end
        end
    endgenerate

    // the 36-bit read port (B, in the pseudo-dual-port mode) drives both output buses
    wire [35:0] do_a = DATA_WIDTH_B == 36 ? {18'b0, q_b[17:0]} : q_a;
    wire [35:0] do_b = DATA_WIDTH_B == 36 ? {18'b0, q_b[35:18]} : q_b;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = do_a[17:0];
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = do_b[17:0];
endmodule

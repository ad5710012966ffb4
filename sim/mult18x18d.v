// MULT18X18D (ECP5 sysDSP 18 x 18 multiplier) behavioural model for simulation.
//
// Yosys ships only a black box for MULT18X18D; gate-level runs of montpipe's netlists (and RTL
// runs of the lanes that instantiate it) use this model. What it follows, from Lattice's ECP5
// sysDSP usage guide and primitive reference:
//  * pins: A, B, C (18 bits), SRIA/SRIB shift-in, SIGNEDA/SIGNEDB, SOURCEA/SOURCEB, CLK0-3,
//    CE0-3, RST0-3; P (36 bits), SIGNEDP, ROA/ROB/ROC, SROA/SROB;
//  * register stages: input A (with SIGNEDA), input B (with SIGNEDB), input C, pipeline (the
//    product and SIGNEDP), output (the product). Each is bypassed when its *_CLK parameter is
//    "NONE", else clocked on the rising edge of the CLKn it names, loads only while its CEn is
//    high, and clears to 0 while its RSTn is high; the reset wins over the clock enable, and is
//    synchronous (RESETMODE "SYNC") or asynchronous ("ASYNC"). Registers start at 0, as after
//    configuration. P is valid one cycle after each enabled stage: inputs at edge k, P after
//    edge k + (number of enabled stages on the path);
//  * signedness: SIGNEDA/SIGNEDB high make A/B two's complement (sign-extended to 36 bits);
//    SIGNEDP = SIGNEDA | SIGNEDB (after the input and pipeline stages);
//  * sources: SOURCEA selects SRIA instead of A; SOURCEB with SOURCEB_MODE "B_SHIFT" (SRIB
//    instead of B), "C_SHIFT" (SRIB instead of C), "B_C_DYNAMIC" (C instead of SRIB);
//    CAS_MATCH_REG "TRUE" puts a second A register in front of SROA.
// The A/B/C pin multiplexers of nextpnr's packed netlist (A16MUX = "0": the pin tied low) are
// followed. Not modelled (a netlist asking for them stops the simulation with a message): SOURCEB_MODE
// "HIGHSPEED", HIGHSPEED_CLK other than "NONE", MULT_BYPASS "ENABLED", the global set/reset (GSR)
// after time 0. CLKn_DIV only matter with HIGHSPEED_CLK and are ignored. No timing.
// (docs/gate-level.md; tests/test_sim_mult18x18d.py checks each point.)

module MULT18X18D(
    A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0, B17, B16,
    B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0, C17, C16, C15, C14,
    C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA,
    SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, SRIA17, SRIA16,
    SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5, SRIA4,
    SRIA3, SRIA2, SRIA1, SRIA0, SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10,
    SRIB9, SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0, SROA17, SROA16, SROA15,
    SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3,
    SROA2, SROA1, SROA0, SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9,
    SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0, ROA17, ROA16, ROA15, ROA14,
    ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0,
    ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4,
    ROB3, ROB2, ROB1, ROB0, ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8,
    ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0, P35, P34, P33, P32, P31, P30, P29, P28, P27,
    P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8,
    P7, P6, P5, P4, P3, P2, P1, P0, SIGNEDP
);
    input A17, A16, A15, A14, A13, A12, A11, A10, A9;
    input A8, A7, A6, A5, A4, A3, A2, A1, A0;
    input B17, B16, B15, B14, B13, B12, B11, B10, B9;
    input B8, B7, B6, B5, B4, B3, B2, B1, B0;
    input C17, C16, C15, C14, C13, C12, C11, C10, C9;
    input C8, C7, C6, C5, C4, C3, C2, C1, C0;
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3;
    input CE2, CE1, CE0, RST3, RST2, RST1, RST0, SRIA17, SRIA16;
    input SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7;
    input SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0, SRIB17, SRIB16;
    input SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7;
    input SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0;
    output SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9;
    output SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0;
    output SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9;
    output SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0;
    output ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9;
    output ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0;
    output ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9;
    output ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0;
    output ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9;
    output ROC8, ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0;
    output P35, P34, P33, P32, P31, P30, P29, P28, P27;
    output P26, P25, P24, P23, P22, P21, P20, P19, P18;
    output P17, P16, P15, P14, P13, P12, P11, P10, P9;
    output P8, P7, P6, P5, P4, P3, P2, P1, P0;
    output SIGNEDP;

    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";
    // nextpnr's packed netlist ties unused operand pins through these: "0", "1", "INV", or
    // the pin itself
    parameter A0MUX = "A0";
    parameter A1MUX = "A1";
    parameter A2MUX = "A2";
    parameter A3MUX = "A3";
    parameter A4MUX = "A4";
    parameter A5MUX = "A5";
    parameter A6MUX = "A6";
    parameter A7MUX = "A7";
    parameter A8MUX = "A8";
    parameter A9MUX = "A9";
    parameter A10MUX = "A10";
    parameter A11MUX = "A11";
    parameter A12MUX = "A12";
    parameter A13MUX = "A13";
    parameter A14MUX = "A14";
    parameter A15MUX = "A15";
    parameter A16MUX = "A16";
    parameter A17MUX = "A17";
    parameter B0MUX = "B0";
    parameter B1MUX = "B1";
    parameter B2MUX = "B2";
    parameter B3MUX = "B3";
    parameter B4MUX = "B4";
    parameter B5MUX = "B5";
    parameter B6MUX = "B6";
    parameter B7MUX = "B7";
    parameter B8MUX = "B8";
    parameter B9MUX = "B9";
    parameter B10MUX = "B10";
    parameter B11MUX = "B11";
    parameter B12MUX = "B12";
    parameter B13MUX = "B13";
    parameter B14MUX = "B14";
    parameter B15MUX = "B15";
    parameter B16MUX = "B16";
    parameter B17MUX = "B17";
    parameter C0MUX = "C0";
    parameter C1MUX = "C1";
    parameter C2MUX = "C2";
    parameter C3MUX = "C3";
    parameter C4MUX = "C4";
    parameter C5MUX = "C5";
    parameter C6MUX = "C6";
    parameter C7MUX = "C7";
    parameter C8MUX = "C8";
    parameter C9MUX = "C9";
    parameter C10MUX = "C10";
    parameter C11MUX = "C11";
    parameter C12MUX = "C12";
    parameter C13MUX = "C13";
    parameter C14MUX = "C14";
    parameter C15MUX = "C15";
    parameter C16MUX = "C16";
    parameter C17MUX = "C17";

    // "CLKn"/"CEn"/"RSTn" -> n; "NONE" (or anything else) -> -1
`define MULT18X18D_SEL(p, n) ((p) == {n, "0"} ? 0 : (p) == {n, "1"} ? 1 : (p) == {n, "2"} ? 2 : (p) == {n, "3"} ? 3 : -1)
    localparam integer A_CLK = `MULT18X18D_SEL(REG_INPUTA_CLK, "CLK");
    localparam integer A_CE = `MULT18X18D_SEL(REG_INPUTA_CE, "CE");
    localparam integer A_RST = `MULT18X18D_SEL(REG_INPUTA_RST, "RST");
    localparam integer B_CLK = `MULT18X18D_SEL(REG_INPUTB_CLK, "CLK");
    localparam integer B_CE = `MULT18X18D_SEL(REG_INPUTB_CE, "CE");
    localparam integer B_RST = `MULT18X18D_SEL(REG_INPUTB_RST, "RST");
    localparam integer C_CLK = `MULT18X18D_SEL(REG_INPUTC_CLK, "CLK");
    localparam integer C_CE = `MULT18X18D_SEL(REG_INPUTC_CE, "CE");
    localparam integer C_RST = `MULT18X18D_SEL(REG_INPUTC_RST, "RST");
    localparam integer M_CLK = `MULT18X18D_SEL(REG_PIPELINE_CLK, "CLK");
    localparam integer M_CE = `MULT18X18D_SEL(REG_PIPELINE_CE, "CE");
    localparam integer M_RST = `MULT18X18D_SEL(REG_PIPELINE_RST, "RST");
    localparam integer O_CLK = `MULT18X18D_SEL(REG_OUTPUT_CLK, "CLK");
    localparam integer O_CE = `MULT18X18D_SEL(REG_OUTPUT_CE, "CE");
    localparam integer O_RST = `MULT18X18D_SEL(REG_OUTPUT_RST, "RST");
`undef MULT18X18D_SEL
    localparam integer ASYNC = (RESETMODE == "ASYNC") ? 1 : 0;

    initial begin
        if (SOURCEB_MODE == "HIGHSPEED" || HIGHSPEED_CLK != "NONE" || MULT_BYPASS != "DISABLED"
                || (RESETMODE != "SYNC" && RESETMODE != "ASYNC")
                || A_CE < 0 || A_RST < 0 || B_CE < 0 || B_RST < 0 || C_CE < 0 || C_RST < 0
                || M_CE < 0 || M_RST < 0 || O_CE < 0 || O_RST < 0) begin
            $display("MULT18X18D %m: a configuration this model does not cover (SOURCEB_MODE %0s, HIGHSPEED_CLK %0s, MULT_BYPASS %0s, RESETMODE %0s, or a CE/RST name not CE0-3/RST0-3)",
                     SOURCEB_MODE, HIGHSPEED_CLK, MULT_BYPASS, RESETMODE);
            $finish;
        end
    end

`define MULT18X18D_PIN(mux, pin, name) ((mux) == "0" ? 1'b0 : (mux) == "1" ? 1'b1 : (mux) == "INV" ? ~(pin) : (pin))
    wire [17:0] a_in = {
        `MULT18X18D_PIN(A17MUX, A17, "A17"),
        `MULT18X18D_PIN(A16MUX, A16, "A16"),
        `MULT18X18D_PIN(A15MUX, A15, "A15"),
        `MULT18X18D_PIN(A14MUX, A14, "A14"),
        `MULT18X18D_PIN(A13MUX, A13, "A13"),
        `MULT18X18D_PIN(A12MUX, A12, "A12"),
        `MULT18X18D_PIN(A11MUX, A11, "A11"),
        `MULT18X18D_PIN(A10MUX, A10, "A10"),
        `MULT18X18D_PIN(A9MUX, A9, "A9"),
        `MULT18X18D_PIN(A8MUX, A8, "A8"),
        `MULT18X18D_PIN(A7MUX, A7, "A7"),
        `MULT18X18D_PIN(A6MUX, A6, "A6"),
        `MULT18X18D_PIN(A5MUX, A5, "A5"),
        `MULT18X18D_PIN(A4MUX, A4, "A4"),
        `MULT18X18D_PIN(A3MUX, A3, "A3"),
        `MULT18X18D_PIN(A2MUX, A2, "A2"),
        `MULT18X18D_PIN(A1MUX, A1, "A1"),
        `MULT18X18D_PIN(A0MUX, A0, "A0")};
    wire [17:0] b_in = {
        `MULT18X18D_PIN(B17MUX, B17, "B17"),
        `MULT18X18D_PIN(B16MUX, B16, "B16"),
        `MULT18X18D_PIN(B15MUX, B15, "B15"),
        `MULT18X18D_PIN(B14MUX, B14, "B14"),
        `MULT18X18D_PIN(B13MUX, B13, "B13"),
        `MULT18X18D_PIN(B12MUX, B12, "B12"),
        `MULT18X18D_PIN(B11MUX, B11, "B11"),
        `MULT18X18D_PIN(B10MUX, B10, "B10"),
        `MULT18X18D_PIN(B9MUX, B9, "B9"),
        `MULT18X18D_PIN(B8MUX, B8, "B8"),
        `MULT18X18D_PIN(B7MUX, B7, "B7"),
        `MULT18X18D_PIN(B6MUX, B6, "B6"),
        `MULT18X18D_PIN(B5MUX, B5, "B5"),
        `MULT18X18D_PIN(B4MUX, B4, "B4"),
        `MULT18X18D_PIN(B3MUX, B3, "B3"),
        `MULT18X18D_PIN(B2MUX, B2, "B2"),
        `MULT18X18D_PIN(B1MUX, B1, "B1"),
        `MULT18X18D_PIN(B0MUX, B0, "B0")};
    wire [17:0] c_in = {
        `MULT18X18D_PIN(C17MUX, C17, "C17"),
        `MULT18X18D_PIN(C16MUX, C16, "C16"),
        `MULT18X18D_PIN(C15MUX, C15, "C15"),
        `MULT18X18D_PIN(C14MUX, C14, "C14"),
        `MULT18X18D_PIN(C13MUX, C13, "C13"),
        `MULT18X18D_PIN(C12MUX, C12, "C12"),
        `MULT18X18D_PIN(C11MUX, C11, "C11"),
        `MULT18X18D_PIN(C10MUX, C10, "C10"),
        `MULT18X18D_PIN(C9MUX, C9, "C9"),
        `MULT18X18D_PIN(C8MUX, C8, "C8"),
        `MULT18X18D_PIN(C7MUX, C7, "C7"),
        `MULT18X18D_PIN(C6MUX, C6, "C6"),
        `MULT18X18D_PIN(C5MUX, C5, "C5"),
        `MULT18X18D_PIN(C4MUX, C4, "C4"),
        `MULT18X18D_PIN(C3MUX, C3, "C3"),
        `MULT18X18D_PIN(C2MUX, C2, "C2"),
        `MULT18X18D_PIN(C1MUX, C1, "C1"),
        `MULT18X18D_PIN(C0MUX, C0, "C0")};
`undef MULT18X18D_PIN
    wire [17:0] sria = {SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0};
    wire [17:0] srib = {SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0};
    wire [3:0] clk = {CLK3, CLK2, CLK1, CLK0};
    wire [3:0] ce = {CE3, CE2, CE1, CE0};
    wire [3:0] rst = {RST3, RST2, RST1, RST0};

    wire [17:0] c_q;
    MULT18X18D_stage #(.N(18), .CLK(C_CLK), .CE(C_CE), .RST(C_RST), .ASYNC(ASYNC))
        reg_c (.clk(clk), .ce(ce), .rst(rst), .d(c_in), .q(c_q));

    wire [17:0] a_src = SOURCEA ? sria : a_in;
    wire [17:0] b_src = SOURCEB_MODE == "C_SHIFT" ? (SOURCEB ? srib : c_q)
                      : SOURCEB_MODE == "B_C_DYNAMIC" ? (SOURCEB ? c_q : srib)
                      : (SOURCEB ? srib : b_in);

    wire [17:0] a_q, a_q2, b_q;
    wire signeda_q, signedb_q;
    MULT18X18D_stage #(.N(19), .CLK(A_CLK), .CE(A_CE), .RST(A_RST), .ASYNC(ASYNC))
        reg_a (.clk(clk), .ce(ce), .rst(rst), .d({SIGNEDA, a_src}), .q({signeda_q, a_q}));
    MULT18X18D_stage #(.N(18), .CLK(A_CLK), .CE(A_CE), .RST(A_RST), .ASYNC(ASYNC))
        reg_a2 (.clk(clk), .ce(ce), .rst(rst), .d(a_q), .q(a_q2));
    MULT18X18D_stage #(.N(19), .CLK(B_CLK), .CE(B_CE), .RST(B_RST), .ASYNC(ASYNC))
        reg_b (.clk(clk), .ce(ce), .rst(rst), .d({SIGNEDB, b_src}), .q({signedb_q, b_q}));

    wire [35:0] a_ext = {{18{signeda_q & a_q[17]}}, a_q};
    wire [35:0] b_ext = {{18{signedb_q & b_q[17]}}, b_q};
    wire [35:0] product = a_ext * b_ext;

    wire [35:0] p_m;
    wire signedp_m;
    MULT18X18D_stage #(.N(37), .CLK(M_CLK), .CE(M_CE), .RST(M_RST), .ASYNC(ASYNC))
        reg_m (.clk(clk), .ce(ce), .rst(rst), .d({signeda_q | signedb_q, product}),
               .q({signedp_m, p_m}));
    wire [35:0] p_o;
    MULT18X18D_stage #(.N(36), .CLK(O_CLK), .CE(O_CE), .RST(O_RST), .ASYNC(ASYNC))
        reg_o (.clk(clk), .ce(ce), .rst(rst), .d(p_m), .q(p_o));

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p_o;
    assign SIGNEDP = signedp_m;
    assign {ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0} = a_q;
    assign {ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0} = b_q;
    assign {ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0} = c_q;
    assign {SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0} = CAS_MATCH_REG == "TRUE" ? a_q2 : a_q;
    assign {SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0} = b_q;
endmodule

// One register stage of MULT18X18D: CLK < 0 bypasses it; else rising edge of clk[CLK], load
// while ce[CE], clear while rst[RST] (over the enable; asynchronously if ASYNC).
module MULT18X18D_stage #(parameter integer N = 1, CLK = -1, CE = 0, RST = 0, ASYNC = 0) (
    input [3:0] clk, input [3:0] ce, input [3:0] rst, input [N-1:0] d, output [N-1:0] q
);
    generate
        if (CLK < 0) begin: bypass
            assign q = d;
        end else begin: stage
            reg [N-1:0] r = {N{1'b0}};
            wire c = clk[CLK];
            wire s = rst[RST];
            if (ASYNC) begin: async_reset
                always @(posedge c or posedge s)
                    if (s) r <= {N{1'b0}};
                    else if (ce[CE]) r <= d;
            end else begin: sync_reset
                always @(posedge c)
                    if (s) r <= {N{1'b0}};
                    else if (ce[CE]) r <= d;
            end
            assign q = r;
        end
    endgenerate
endmodule

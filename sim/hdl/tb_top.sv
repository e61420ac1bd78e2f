// Testbench top for the conv_accel RTL: clock and power-on reset generated here
// (compile with --timing), the AXI4 memory model on the accelerator's master port,
// and the AXI4-Lite master / reset / backdoor signals as plain variables that the
// host drives: through VPI from cocotb (sim/server.py), or from Verilog when
// compiled with +define+PURE_TB (sim/hdl/pure_tb.svh).
module tb_top #(
    parameter int     AXI_DATA_WIDTH  = 64,
    parameter int     AXI_ADDR_WIDTH  = 32,
    parameter longint MEM_BYTES       = 64'd67108864,    // 64 MiB
    parameter int     READ_LATENCY    = 8,
    parameter int     MAX_OUTSTANDING = 8,
    parameter int     CLK_HALF_PERIOD = 5,    // time units (1 ns); the period is twice this
    parameter int     RESET_CYCLES    = 4
);
    // ---------------------------------------------------------- clock and reset
    logic clk = 1'b0;
    initial forever #(CLK_HALF_PERIOD) clk = ~clk;

    // Power-on reset, released between the edges after RESET_CYCLES rising edges.
    // (Verilator executes '<=' in initial blocks as '=': drive between edges.)
    logic por_rst = 1'b1;
    initial begin
        repeat (RESET_CYCLES) @(posedge clk);
        @(negedge clk);
        por_rst = 1'b0;
    end
    logic host_rst = 1'b0;                    // host-driven reset
    logic host_fast = 1'b0;                   // host only awaits irq (sim/hdl/cocotb_main.cpp)
    wire  rst = por_rst | host_rst;

    // ------------------------------------------------- AXI4-Lite master (host)
    logic [11:0] s_axil_awaddr  = '0;
    logic [2:0]  s_axil_awprot  = '0;
    logic        s_axil_awvalid = 1'b0;
    wire         s_axil_awready;
    logic [31:0] s_axil_wdata   = '0;
    logic [3:0]  s_axil_wstrb   = '0;
    logic        s_axil_wvalid  = 1'b0;
    wire         s_axil_wready;
    wire  [1:0]  s_axil_bresp;
    wire         s_axil_bvalid;
    logic        s_axil_bready  = 1'b0;
    logic [11:0] s_axil_araddr  = '0;
    logic [2:0]  s_axil_arprot  = '0;
    logic        s_axil_arvalid = 1'b0;
    wire         s_axil_arready;
    wire  [31:0] s_axil_rdata;
    wire  [1:0]  s_axil_rresp;
    wire         s_axil_rvalid;
    logic        s_axil_rready  = 1'b0;

    wire         irq;

    // --------------------------------------------------------- memory backdoor
    logic        bd_load  = 1'b0;
    logic        bd_dump  = 1'b0;
    logic [63:0] bd_first = '0;
    logic [63:0] bd_last  = '0;

    // ----------------------------------------------------------- AXI4 master
    localparam int D = AXI_DATA_WIDTH, A = AXI_ADDR_WIDTH;
    wire [A-1:0]   m_axi_araddr;
    wire [7:0]     m_axi_arlen;
    wire [2:0]     m_axi_arsize;
    wire [1:0]     m_axi_arburst;
    wire [3:0]     m_axi_arcache;
    wire [2:0]     m_axi_arprot;
    wire           m_axi_arvalid;
    wire           m_axi_arready;
    wire [D-1:0]   m_axi_rdata;
    wire [1:0]     m_axi_rresp;
    wire           m_axi_rlast;
    wire           m_axi_rvalid;
    wire           m_axi_rready;
    wire [A-1:0]   m_axi_awaddr;
    wire [7:0]     m_axi_awlen;
    wire [2:0]     m_axi_awsize;
    wire [1:0]     m_axi_awburst;
    wire [3:0]     m_axi_awcache;
    wire [2:0]     m_axi_awprot;
    wire           m_axi_awvalid;
    wire           m_axi_awready;
    wire [D-1:0]   m_axi_wdata;
    wire [D/8-1:0] m_axi_wstrb;
    wire           m_axi_wlast;
    wire           m_axi_wvalid;
    wire           m_axi_wready;
    wire [1:0]     m_axi_bresp;
    wire           m_axi_bvalid;
    wire           m_axi_bready;

    conv_accel dut (
        .clk            (clk),
        .rst            (rst),
        .irq            (irq),
        .s_axil_awaddr  (s_axil_awaddr),
        .s_axil_awprot  (s_axil_awprot),
        .s_axil_awvalid (s_axil_awvalid),
        .s_axil_awready (s_axil_awready),
        .s_axil_wdata   (s_axil_wdata),
        .s_axil_wstrb   (s_axil_wstrb),
        .s_axil_wvalid  (s_axil_wvalid),
        .s_axil_wready  (s_axil_wready),
        .s_axil_bresp   (s_axil_bresp),
        .s_axil_bvalid  (s_axil_bvalid),
        .s_axil_bready  (s_axil_bready),
        .s_axil_araddr  (s_axil_araddr),
        .s_axil_arprot  (s_axil_arprot),
        .s_axil_arvalid (s_axil_arvalid),
        .s_axil_arready (s_axil_arready),
        .s_axil_rdata   (s_axil_rdata),
        .s_axil_rresp   (s_axil_rresp),
        .s_axil_rvalid  (s_axil_rvalid),
        .s_axil_rready  (s_axil_rready),
        .m_axi_araddr   (m_axi_araddr),
        .m_axi_arlen    (m_axi_arlen),
        .m_axi_arsize   (m_axi_arsize),
        .m_axi_arburst  (m_axi_arburst),
        .m_axi_arcache  (m_axi_arcache),
        .m_axi_arprot   (m_axi_arprot),
        .m_axi_arvalid  (m_axi_arvalid),
        .m_axi_arready  (m_axi_arready),
        .m_axi_rdata    (m_axi_rdata),
        .m_axi_rresp    (m_axi_rresp),
        .m_axi_rlast    (m_axi_rlast),
        .m_axi_rvalid   (m_axi_rvalid),
        .m_axi_rready   (m_axi_rready),
        .m_axi_awaddr   (m_axi_awaddr),
        .m_axi_awlen    (m_axi_awlen),
        .m_axi_awsize   (m_axi_awsize),
        .m_axi_awburst  (m_axi_awburst),
        .m_axi_awcache  (m_axi_awcache),
        .m_axi_awprot   (m_axi_awprot),
        .m_axi_awvalid  (m_axi_awvalid),
        .m_axi_awready  (m_axi_awready),
        .m_axi_wdata    (m_axi_wdata),
        .m_axi_wstrb    (m_axi_wstrb),
        .m_axi_wlast    (m_axi_wlast),
        .m_axi_wvalid   (m_axi_wvalid),
        .m_axi_wready   (m_axi_wready),
        .m_axi_bresp    (m_axi_bresp),
        .m_axi_bvalid   (m_axi_bvalid),
        .m_axi_bready   (m_axi_bready)
    );

    axi_mem #(
        .DATA_WIDTH      (D),
        .ADDR_WIDTH      (A),
        .MEM_BYTES       (MEM_BYTES),
        .READ_LATENCY    (READ_LATENCY),
        .MAX_OUTSTANDING (MAX_OUTSTANDING)
    ) mem (
        .clk     (clk),
        .rst     (rst),
        .araddr  (m_axi_araddr),
        .arlen   (m_axi_arlen),
        .arsize  (m_axi_arsize),
        .arburst (m_axi_arburst),
        .arvalid (m_axi_arvalid),
        .arready (m_axi_arready),
        .rdata   (m_axi_rdata),
        .rresp   (m_axi_rresp),
        .rlast   (m_axi_rlast),
        .rvalid  (m_axi_rvalid),
        .rready  (m_axi_rready),
        .awaddr  (m_axi_awaddr),
        .awlen   (m_axi_awlen),
        .awsize  (m_axi_awsize),
        .awburst (m_axi_awburst),
        .awvalid (m_axi_awvalid),
        .awready (m_axi_awready),
        .wdata   (m_axi_wdata),
        .wstrb   (m_axi_wstrb),
        .wlast   (m_axi_wlast),
        .wvalid  (m_axi_wvalid),
        .wready  (m_axi_wready),
        .bresp   (m_axi_bresp),
        .bvalid  (m_axi_bvalid),
        .bready  (m_axi_bready),
        .bd_load (bd_load),
        .bd_dump (bd_dump),
        .bd_first(bd_first),
        .bd_last (bd_last)
    );

`ifdef PURE_TB
`include "pure_tb.svh"
`endif
endmodule

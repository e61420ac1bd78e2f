// Stand-in for the generated conv_accel, for testing the simulation infrastructure.
// Same ports as the real accelerator. A DMA copy engine:
//   0x000 MAGIC (R)           0x434E5641
//   0x040 CTRL (W)            bit0 start (ignored while busy), bit1 clear done/error
//   0x044 STATUS (R)          bit0 busy, bit1 done, bit2 error, [15:8] error code
//   0x048 IRQ_ENABLE (RW)     bit0: irq = STATUS.done
//   0x080 + 4*i (RW)          32 scratch registers; 0x080 SRC, 0x084 DST, 0x088 NWORDS,
//                             0x0A0 WSTRB (the write strobes of every beat; 0: all ones)
//   0x100 CYCLES (R)          cycles busy during the last job
// A start copies NWORDS bus words from byte address SRC to DST with INCR bursts of up
// to MAX_BURST beats, several reads and writes outstanding (a FIFO of FIFO_DEPTH words
// in between). Error codes: 16 a read returned SLVERR/DECERR, 17 a write did.
module conv_accel #(
    parameter D = 64,
    parameter A = 32,
    parameter MAX_BURST = 16,
    parameter FIFO_DEPTH = 64
) (
    input  wire           clk,
    input  wire           rst,
    output wire           irq,
    input  wire [11:0]    s_axil_awaddr,
    input  wire [2:0]     s_axil_awprot,
    input  wire           s_axil_awvalid,
    output wire           s_axil_awready,
    input  wire [31:0]    s_axil_wdata,
    input  wire [3:0]     s_axil_wstrb,
    input  wire           s_axil_wvalid,
    output wire           s_axil_wready,
    output wire [1:0]     s_axil_bresp,
    output reg            s_axil_bvalid,
    input  wire           s_axil_bready,
    input  wire [11:0]    s_axil_araddr,
    input  wire [2:0]     s_axil_arprot,
    input  wire           s_axil_arvalid,
    output wire           s_axil_arready,
    output reg  [31:0]    s_axil_rdata,
    output wire [1:0]     s_axil_rresp,
    output reg            s_axil_rvalid,
    input  wire           s_axil_rready,
    output reg  [A-1:0]   m_axi_araddr,
    output reg  [7:0]     m_axi_arlen,
    output wire [2:0]     m_axi_arsize,
    output wire [1:0]     m_axi_arburst,
    output wire [3:0]     m_axi_arcache,
    output wire [2:0]     m_axi_arprot,
    output reg            m_axi_arvalid,
    input  wire           m_axi_arready,
    input  wire [D-1:0]   m_axi_rdata,
    input  wire [1:0]     m_axi_rresp,
    input  wire           m_axi_rlast,
    input  wire           m_axi_rvalid,
    output wire           m_axi_rready,
    output reg  [A-1:0]   m_axi_awaddr,
    output reg  [7:0]     m_axi_awlen,
    output wire [2:0]     m_axi_awsize,
    output wire [1:0]     m_axi_awburst,
    output wire [3:0]     m_axi_awcache,
    output wire [2:0]     m_axi_awprot,
    output reg            m_axi_awvalid,
    input  wire           m_axi_awready,
    output wire [D-1:0]   m_axi_wdata,
    output wire [D/8-1:0] m_axi_wstrb,
    output wire           m_axi_wlast,
    output wire           m_axi_wvalid,
    input  wire           m_axi_wready,
    input  wire [1:0]     m_axi_bresp,
    input  wire           m_axi_bvalid,
    output wire           m_axi_bready
);
    localparam BYTES = D / 8;
    localparam SIZE = $clog2(BYTES);
    localparam FW = $clog2(FIFO_DEPTH);

    // ------------------------------------------------------------- registers
    reg [31:0] scratch [0:31];
    reg        busy, done, err, irq_en;
    reg [7:0]  err_code;
    reg [31:0] cycles;
    wire [31:0] src = scratch[0], dst = scratch[1], nwords = scratch[2];

    assign irq = done & irq_en;

    // AXI4-Lite write: AW and W in any order, then B.
    reg        aw_got, w_got;
    reg [11:0] aw_addr_q;
    reg [31:0] w_data_q;
    assign s_axil_awready = !aw_got && !s_axil_bvalid;
    assign s_axil_wready  = !w_got && !s_axil_bvalid;
    assign s_axil_bresp   = 2'b00;
    assign s_axil_arready = !s_axil_rvalid;
    assign s_axil_rresp   = 2'b00;

    wire reg_write = aw_got && w_got;
    wire start = reg_write && aw_addr_q == 12'h040 && w_data_q[0] && !busy;

    // ------------------------------------------------------------ copy engine
    reg [A-1:0]  rd_addr, wr_addr;
    reg [31:0]   rd_left, aw_left;      // words not yet covered by an AR / AW
    reg [FW:0]   reserved;              // FIFO words requested and not yet written out
    reg [FW:0]   uncommitted;           // FIFO words received and not yet covered by an AW
    reg [15:0]   b_pending;             // AWs issued whose B has not arrived

    wire [31:0] rd_len = rd_left > MAX_BURST ? MAX_BURST : rd_left;
    wire [31:0] aw_len = aw_left > MAX_BURST ? MAX_BURST : aw_left;
    wire issue_ar = busy && !m_axi_arvalid && rd_left != 0 && reserved + rd_len <= FIFO_DEPTH;

    reg [D-1:0]  fifo [0:FIFO_DEPTH-1];
    reg [FW-1:0] f_wp, f_rp;

    // Burst lengths (minus one) of AWs issued, for WLAST.
    reg [7:0]    wq_len [0:7];
    reg [2:0]    wq_wp, wq_rp;
    reg [3:0]    wq_count;
    reg [7:0]    w_idx;
    wire issue_aw = busy && !m_axi_awvalid && aw_left != 0 && uncommitted >= aw_len
                    && wq_count != 8;

    assign m_axi_arsize  = SIZE;
    assign m_axi_arburst = 2'b01;
    assign m_axi_arcache = 4'b0011;
    assign m_axi_arprot  = 3'b000;
    assign m_axi_rready  = 1'b1;       // FIFO space is reserved when the AR is issued
    assign m_axi_awsize  = SIZE;
    assign m_axi_awburst = 2'b01;
    assign m_axi_awcache = 4'b0011;
    assign m_axi_awprot  = 3'b000;
    assign m_axi_wvalid  = wq_count != 0;
    assign m_axi_wdata   = fifo[f_rp];
    assign m_axi_wstrb   = scratch[8][BYTES-1:0] != 0 ? scratch[8][BYTES-1:0] : {BYTES{1'b1}};
    assign m_axi_wlast   = w_idx == wq_len[wq_rp];
    assign m_axi_bready  = 1'b1;

    wire r_beat = m_axi_rvalid && m_axi_rready;
    wire w_beat = m_axi_wvalid && m_axi_wready;
    wire b_beat = m_axi_bvalid && m_axi_bready;
    wire finished = busy && rd_left == 0 && aw_left == 0 && wq_count == 0 && b_pending == 0
                    && !m_axi_awvalid;

    integer i;
    always @(posedge clk) begin
        if (rst) begin
            for (i = 0; i < 32; i = i + 1) scratch[i] <= 32'd0;
            busy <= 1'b0; done <= 1'b0; err <= 1'b0; err_code <= 8'd0; irq_en <= 1'b0;
            cycles <= 32'd0;
            aw_got <= 1'b0; w_got <= 1'b0; s_axil_bvalid <= 1'b0; s_axil_rvalid <= 1'b0;
            m_axi_arvalid <= 1'b0; m_axi_awvalid <= 1'b0;
            rd_left <= 32'd0; aw_left <= 32'd0; reserved <= 0; uncommitted <= 0;
            b_pending <= 16'd0; f_wp <= 0; f_rp <= 0;
            wq_wp <= 3'd0; wq_rp <= 3'd0; wq_count <= 4'd0; w_idx <= 8'd0;
        end else begin
            // ---- register interface
            if (s_axil_awvalid && s_axil_awready) begin
                aw_got <= 1'b1;
                aw_addr_q <= s_axil_awaddr;
            end
            if (s_axil_wvalid && s_axil_wready) begin
                w_got <= 1'b1;
                w_data_q <= s_axil_wdata;
            end
            if (reg_write) begin
                aw_got <= 1'b0;
                w_got <= 1'b0;
                s_axil_bvalid <= 1'b1;
                if (aw_addr_q == 12'h040 && w_data_q[1]) begin
                    done <= 1'b0; err <= 1'b0; err_code <= 8'd0;
                end
                if (aw_addr_q == 12'h048) irq_en <= w_data_q[0];
                if (aw_addr_q[11:7] == 5'b00001) scratch[aw_addr_q[6:2]] <= w_data_q;
            end
            if (s_axil_bvalid && s_axil_bready) s_axil_bvalid <= 1'b0;
            if (s_axil_arvalid && s_axil_arready) begin
                s_axil_rvalid <= 1'b1;
                casez (s_axil_araddr)
                    12'h000: s_axil_rdata <= 32'h434E5641;
                    12'h044: s_axil_rdata <= {16'd0, err_code, 5'd0, err, done, busy};
                    12'h048: s_axil_rdata <= {31'd0, irq_en};
                    12'h100: s_axil_rdata <= cycles;
                    12'b0000_1???_??00: s_axil_rdata <= scratch[s_axil_araddr[6:2]];
                    default: s_axil_rdata <= 32'd0;
                endcase
            end
            if (s_axil_rvalid && s_axil_rready) s_axil_rvalid <= 1'b0;

            // ---- copy engine
            if (start) begin
                busy <= 1'b1; done <= 1'b0; err <= 1'b0; err_code <= 8'd0; cycles <= 32'd0;
                rd_addr <= src; wr_addr <= dst; rd_left <= nwords; aw_left <= nwords;
            end
            if (busy) cycles <= cycles + 32'd1;

            if (issue_ar) begin
                m_axi_arvalid <= 1'b1;
                m_axi_araddr <= rd_addr;
                m_axi_arlen <= rd_len[7:0] - 8'd1;
                rd_addr <= rd_addr + rd_len * BYTES;
                rd_left <= rd_left - rd_len;
            end else if (m_axi_arready) begin
                m_axi_arvalid <= 1'b0;
            end
            reserved <= reserved + (issue_ar ? rd_len[FW:0] : 0) - (w_beat ? 1 : 0);

            if (r_beat) begin
                fifo[f_wp] <= m_axi_rdata;
                f_wp <= f_wp + 1'b1;
                if (m_axi_rresp[1] && !err) begin err <= 1'b1; err_code <= 8'd16; end
            end
            uncommitted <= uncommitted + (r_beat ? 1 : 0) - (issue_aw ? aw_len[FW:0] : 0);

            if (issue_aw) begin
                m_axi_awvalid <= 1'b1;
                m_axi_awaddr <= wr_addr;
                m_axi_awlen <= aw_len[7:0] - 8'd1;
                wr_addr <= wr_addr + aw_len * BYTES;
                aw_left <= aw_left - aw_len;
                wq_len[wq_wp] <= aw_len[7:0] - 8'd1;
                wq_wp <= wq_wp + 3'd1;
            end else if (m_axi_awready) begin
                m_axi_awvalid <= 1'b0;
            end
            if (w_beat) begin
                f_rp <= f_rp + 1'b1;
                w_idx <= m_axi_wlast ? 8'd0 : w_idx + 8'd1;
                if (m_axi_wlast) wq_rp <= wq_rp + 3'd1;
            end
            wq_count <= wq_count + (issue_aw ? 4'd1 : 4'd0) - (w_beat && m_axi_wlast ? 4'd1 : 4'd0);
            b_pending <= b_pending + (issue_aw ? 16'd1 : 16'd0) - (b_beat ? 16'd1 : 16'd0);
            if (b_beat && m_axi_bresp[1] && !err) begin err <= 1'b1; err_code <= 8'd17; end

            if (finished && !start) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end
endmodule

// AXI4 slave memory model for simulation (no IDs: in-order, one ID).
//
// * Word array of DATA_WIDTH bits, MEM_BYTES bytes (rounded down to whole words).
// * INCR and FIXED bursts (WRAP is treated as INCR), any AxSIZE up to the bus width.
// * AR and AW requests are queued, MAX_OUTSTANDING (a power of two) of each.
// * Reads: the first R beat of a burst comes READ_LATENCY (>= 1) cycles after the
//   AR handshake at the earliest, then one beat per cycle (bursts back to back).
// * Writes: one W beat per cycle (WSTRB honoured) once the burst's AW is accepted,
//   B one cycle after the last W beat.
// * Beats outside the memory: reads return SLVERR and zero data; writes are dropped
//   and the burst's B is SLVERR.
// * Backdoor for the host, no AXI involved, sampled at a rising clock edge:
//   bd_load: $readmemh(+MEM_IN file, mem) - the file uses "@<word address>" lines,
//   bd_dump: $writememh(+MEM_OUT file, mem, bd_first, bd_last) (word addresses).
module axi_mem #(
    parameter int     DATA_WIDTH      = 64,
    parameter int     ADDR_WIDTH      = 32,
    parameter longint MEM_BYTES       = 64'd67108864,
    parameter int     READ_LATENCY    = 8,
    parameter int     MAX_OUTSTANDING = 8
) (
    input  logic                    clk,
    input  logic                    rst,

    input  logic [ADDR_WIDTH-1:0]   araddr,
    input  logic [7:0]              arlen,
    input  logic [2:0]              arsize,
    input  logic [1:0]              arburst,
    input  logic                    arvalid,
    output logic                    arready,
    output logic [DATA_WIDTH-1:0]   rdata,
    output logic [1:0]              rresp,
    output logic                    rlast,
    output logic                    rvalid,
    input  logic                    rready,

    input  logic [ADDR_WIDTH-1:0]   awaddr,
    input  logic [7:0]              awlen,
    input  logic [2:0]              awsize,
    input  logic [1:0]              awburst,
    input  logic                    awvalid,
    output logic                    awready,
    input  logic [DATA_WIDTH-1:0]   wdata,
    input  logic [DATA_WIDTH/8-1:0] wstrb,
    input  logic                    wlast,
    input  logic                    wvalid,
    output logic                    wready,
    output logic [1:0]              bresp,
    output logic                    bvalid,
    input  logic                    bready,

    input  logic                    bd_load,
    input  logic                    bd_dump,
    input  logic [63:0]             bd_first,
    input  logic [63:0]             bd_last
);
    localparam int     BYTES = DATA_WIDTH / 8;
    localparam int     LB    = $clog2(BYTES);
    localparam longint WORDS = MEM_BYTES / longint'(BYTES);
    localparam int     QW    = $clog2(MAX_OUTSTANDING);
    localparam logic [1:0] OKAY = 2'b00, SLVERR = 2'b10;

    logic [DATA_WIDTH-1:0] mem [0:WORDS-1];

    string mem_in_file, mem_out_file;
    initial begin
        if (!$value$plusargs("MEM_IN=%s", mem_in_file)) mem_in_file = "mem_in.hex";
        if (!$value$plusargs("MEM_OUT=%s", mem_out_file)) mem_out_file = "mem_out.hex";
    end

    function automatic logic [ADDR_WIDTH-1:0] next_addr(
            input logic [ADDR_WIDTH-1:0] a, input logic [2:0] size, input logic [1:0] burst);
        if (burst == 2'b00) return a;
        return ((a >> size) << size) + (ADDR_WIDTH'(1) << size);
    endfunction

    function automatic logic in_range(input logic [ADDR_WIDTH-1:0] a);
        return (64'(a) >> LB) < 64'(WORDS);
    endfunction

    function automatic logic [DATA_WIDTH-1:0] strobe_mask(input logic [BYTES-1:0] strb);
        logic [DATA_WIDTH-1:0] m;
        for (int i = 0; i < BYTES; i++) m[i*8 +: 8] = {8{strb[i]}};
        return m;
    endfunction

    logic [63:0] cyc;

    // ---------------------------------------------------------------- read side
    logic [ADDR_WIDTH-1:0] arq_addr  [MAX_OUTSTANDING];
    logic [7:0]            arq_len   [MAX_OUTSTANDING];
    logic [2:0]            arq_size  [MAX_OUTSTANDING];
    logic [1:0]            arq_burst [MAX_OUTSTANDING];
    logic [63:0]           arq_due   [MAX_OUTSTANDING];
    logic [QW-1:0]         arq_wp, arq_rp;
    logic [QW:0]           arq_count;

    logic                  r_active;
    logic [ADDR_WIDTH-1:0] r_addr;
    logic [7:0]            r_left;
    logic [2:0]            r_size;
    logic [1:0]            r_burst;

    assign arready = arq_count != (QW+1)'(MAX_OUTSTANDING);

    // The beat to emit next: continue the current burst, or start the head of the queue.
    logic                  rs_ok, rs_pop;
    logic [ADDR_WIDTH-1:0] rs_addr;
    logic [7:0]            rs_left;
    logic [2:0]            rs_size;
    logic [1:0]            rs_burst;
    always_comb begin
        rs_pop   = 1'b0;
        rs_ok    = r_active;
        rs_addr  = r_addr;
        rs_left  = r_left;
        rs_size  = r_size;
        rs_burst = r_burst;
        if (!r_active && arq_count != 0 && cyc >= arq_due[arq_rp]) begin
            rs_ok    = 1'b1;
            rs_pop   = 1'b1;
            rs_addr  = arq_addr[arq_rp];
            rs_left  = arq_len[arq_rp];
            rs_size  = arq_size[arq_rp];
            rs_burst = arq_burst[arq_rp];
        end
    end
    wire r_slot = !rvalid || rready;
    wire r_pop  = r_slot && rs_pop;
    wire ar_push = arvalid && arready;

    // --------------------------------------------------------------- write side
    logic [ADDR_WIDTH-1:0] awq_addr  [MAX_OUTSTANDING];
    logic [7:0]            awq_len   [MAX_OUTSTANDING];
    logic [2:0]            awq_size  [MAX_OUTSTANDING];
    logic [1:0]            awq_burst [MAX_OUTSTANDING];
    logic [QW-1:0]         awq_wp, awq_rp;
    logic [QW:0]           awq_count;

    logic                  w_active, w_err;
    logic [ADDR_WIDTH-1:0] w_addr;
    logic [7:0]            w_left;
    logic [2:0]            w_size;
    logic [1:0]            w_burst;

    logic [1:0]            bq_resp [MAX_OUTSTANDING];
    logic [QW-1:0]         bq_wp, bq_rp;
    logic [QW:0]           bq_count;

    assign awready = awq_count != (QW+1)'(MAX_OUTSTANDING);
    assign wready  = (w_active || awq_count != 0) && bq_count != (QW+1)'(MAX_OUTSTANDING);
    assign bvalid  = bq_count != 0;
    assign bresp   = bq_resp[bq_rp];

    logic [ADDR_WIDTH-1:0] ws_addr;
    logic [7:0]            ws_left;
    logic [2:0]            ws_size;
    logic [1:0]            ws_burst;
    logic                  ws_err;
    always_comb begin
        ws_addr  = w_active ? w_addr  : awq_addr[awq_rp];
        ws_left  = w_active ? w_left  : awq_len[awq_rp];
        ws_size  = w_active ? w_size  : awq_size[awq_rp];
        ws_burst = w_active ? w_burst : awq_burst[awq_rp];
        ws_err   = (w_active && w_err) || !in_range(ws_addr);
    end
    wire w_beat  = wvalid && wready;
    wire aw_push = awvalid && awready;
    wire aw_pop  = w_beat && !w_active;
    wire b_push  = w_beat && ws_left == 0;
    wire b_pop   = bvalid && bready;

    always_ff @(posedge clk) begin
        // Memory: AXI writes, backdoor. Not reset.
        if (w_beat && in_range(ws_addr))
            mem[ws_addr >> LB] <= (mem[ws_addr >> LB] & ~strobe_mask(wstrb))
                                | (wdata & strobe_mask(wstrb));
        if (bd_load) $readmemh(mem_in_file, mem);
        if (bd_dump) $writememh(mem_out_file, mem, bd_first, bd_last);

        if (rst) begin
            cyc       <= '0;
            arq_wp    <= '0;
            arq_rp    <= '0;
            arq_count <= '0;
            r_active  <= 1'b0;
            rvalid    <= 1'b0;
            rlast     <= 1'b0;
            rresp     <= OKAY;
            rdata     <= '0;
            awq_wp    <= '0;
            awq_rp    <= '0;
            awq_count <= '0;
            w_active  <= 1'b0;
            w_err     <= 1'b0;
            bq_wp     <= '0;
            bq_rp     <= '0;
            bq_count  <= '0;
        end else begin
            cyc <= cyc + 1;

            if (ar_push) begin
                arq_addr[arq_wp]  <= araddr;
                arq_len[arq_wp]   <= arlen;
                arq_size[arq_wp]  <= arsize;
                arq_burst[arq_wp] <= arburst;
                arq_due[arq_wp]   <= cyc + 64'(READ_LATENCY);
                arq_wp <= arq_wp + 1'b1;
            end
            if (r_pop) arq_rp <= arq_rp + 1'b1;
            arq_count <= arq_count + (QW+1)'(ar_push) - (QW+1)'(r_pop);

            if (r_slot) begin
                rvalid <= rs_ok;
                if (rs_ok) begin
                    rdata    <= in_range(rs_addr) ? mem[rs_addr >> LB] : '0;
                    rresp    <= in_range(rs_addr) ? OKAY : SLVERR;
                    rlast    <= rs_left == 0;
                    r_active <= rs_left != 0;
                    r_addr   <= next_addr(rs_addr, rs_size, rs_burst);
                    r_left   <= rs_left - 1'b1;
                    r_size   <= rs_size;
                    r_burst  <= rs_burst;
                end
            end

            if (aw_push) begin
                awq_addr[awq_wp]  <= awaddr;
                awq_len[awq_wp]   <= awlen;
                awq_size[awq_wp]  <= awsize;
                awq_burst[awq_wp] <= awburst;
                awq_wp <= awq_wp + 1'b1;
            end
            if (aw_pop) awq_rp <= awq_rp + 1'b1;
            awq_count <= awq_count + (QW+1)'(aw_push) - (QW+1)'(aw_pop);

            if (w_beat) begin
                if (wlast != (ws_left == 0))
                    $display("axi_mem: WLAST=%0d on a beat with %0d beats left (t=%0t)",
                             wlast, ws_left, $time);
                w_active <= ws_left != 0;
                w_err    <= ws_err;
                w_addr   <= next_addr(ws_addr, ws_size, ws_burst);
                w_left   <= ws_left - 1'b1;
                w_size   <= ws_size;
                w_burst  <= ws_burst;
            end
            if (b_push) begin
                bq_resp[bq_wp] <= ws_err ? SLVERR : OKAY;
                bq_wp <= bq_wp + 1'b1;
            end
            if (b_pop) bq_rp <= bq_rp + 1'b1;
            bq_count <= bq_count + (QW+1)'(b_push) - (QW+1)'(b_pop);
        end
    end
endmodule

// Pure-Verilog testbench body, included inside tb_top with +define+PURE_TB.
// It does what a cocotb run through sim/server.py does, with no VPI:
//   +MEM_IN=<hex>           memory image ("@<word address>" lines), loaded at start
//   +REGS=<hex> +NREGS=<n>  register writes, one 64-bit word each: {offset, value}
//   +MAX_CYCLES=<n>         give up waiting for irq after n cycles
//   +MEM_OUT=<hex> +DUMP_FIRST=<word> +DUMP_LAST=<word>  memory range dumped at the end
// After the register writes it writes CTRL = 1 (start), waits for irq and prints
//   PURE_TB_START / PURE_TB_DONE <cycles> (or PURE_TB_TIMEOUT <cycles>) / PURE_TB_END
// where <cycles> counts from the end of the CTRL write to irq, as wait_done does.
//
// The AXI4-Lite write sequence is cycle for cycle the one of sim/server.py: signals
// change just after a rising edge and handshakes are sampled at the falling edge.
// Note: in an initial block '<=' is run as '=' by this simulator, and this process may
// run before the always blocks of the same edge, so the signals are driven
// TB_DRIVE_DELAY after the edge instead.

    localparam int TB_PERIOD = 2 * CLK_HALF_PERIOD;
    localparam int TB_DRIVE_DELAY = (CLK_HALF_PERIOD + 1) / 2;
    localparam logic [11:0] TB_CTRL = 12'h040;

    logic [63:0] tb_regs [0:4095];
    logic        tb_timeout = 1'b0;

    task automatic tb_after_edge();
        @(posedge clk);
        #(TB_DRIVE_DELAY);
    endtask

    // Starts between a rising edge and the next falling edge; returns likewise after
    // the rising edge of the B handshake.
    task automatic tb_axil_write(input logic [11:0] addr, input logic [31:0] data);
        logic aw_hs, w_hs, b_hs;
        s_axil_awaddr  = addr;
        s_axil_awvalid = 1'b1;
        s_axil_wdata   = data;
        s_axil_wstrb   = 4'hf;
        s_axil_wvalid  = 1'b1;
        s_axil_bready  = 1'b1;
        forever begin
            @(negedge clk);                   // settled values before the next rising edge
            aw_hs = s_axil_awvalid && s_axil_awready;
            w_hs  = s_axil_wvalid && s_axil_wready;
            b_hs  = s_axil_bready && s_axil_bvalid;
            if (b_hs && s_axil_bresp != 2'b00)
                $display("PURE_TB_WARNING BRESP=%0d for offset 0x%03x", s_axil_bresp, addr);
            tb_after_edge();
            if (aw_hs) s_axil_awvalid = 1'b0;
            if (w_hs)  s_axil_wvalid  = 1'b0;
            if (b_hs) begin
                s_axil_bready = 1'b0;
                break;
            end
        end
    endtask

    initial begin : pure_tb_main
        string regs_file;
        int nregs;
        longint unsigned dump_first, dump_last, max_cycles, t0, t1;
        bit do_dump;
        if (!$value$plusargs("NREGS=%d", nregs)) nregs = 0;
        if (!$value$plusargs("REGS=%s", regs_file)) regs_file = "regs.hex";
        if (!$value$plusargs("MAX_CYCLES=%d", max_cycles)) max_cycles = 64'd1000000000;
        if (!$value$plusargs("DUMP_FIRST=%d", dump_first)) dump_first = 0;
        do_dump = $value$plusargs("DUMP_LAST=%d", dump_last) != 0;
        if (nregs > 4096) $fatal(1, "PURE_TB: at most 4096 register writes");
        if (nregs > 0) $readmemh(regs_file, tb_regs, 0, nregs - 1);

        wait (!rst);
        tb_after_edge();
        bd_load = 1'b1;                        // memory image, read at the next edge
        tb_after_edge();
        bd_load = 1'b0;
        for (int i = 0; i < nregs; i++)
            tb_axil_write(tb_regs[i][43:32], tb_regs[i][31:0]);
        tb_axil_write(TB_CTRL, 32'h1);
        $display("PURE_TB_START");
        $fflush();
        t0 = $time - 64'(TB_DRIVE_DELAY);           // the rising edge that ended the write
        fork
            begin
                #(max_cycles * 64'(TB_PERIOD) - 64'(TB_DRIVE_DELAY));
                tb_timeout = 1'b1;
            end
        join_none
        // An edge event, not wait(irq || tb_timeout): Verilator resumes a wait()
        // on every evaluation of its operands' triggers, an edge event only on the edge.
        if (!irq) @(posedge irq or posedge tb_timeout);
        t1 = $time;
        if (irq) $display("PURE_TB_DONE %0d", (t1 - t0) / 64'(TB_PERIOD));
        else     $display("PURE_TB_TIMEOUT %0d", (t1 - t0) / 64'(TB_PERIOD));
        $fflush();
        if (do_dump) begin
            tb_after_edge();
            bd_first = dump_first;
            bd_last  = dump_last;
            bd_dump  = 1'b1;
            tb_after_edge();
            bd_dump  = 1'b0;
        end
        $display("PURE_TB_END");
        $fflush();
        $finish;
    end

"""RTL simulation of the accelerator: Verilator builds (`sim.build`), the cocotb
cosimulation transport (`sim.cosim.CosimTransport`, served inside the simulator by
`sim.server`) and a pure-Verilog reference testbench (`sim.pure_tb`).

Kept free of imports: the simulator process imports `sim.server` through it.
"""

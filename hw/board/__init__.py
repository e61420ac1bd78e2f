"""FPGA board support: board tops (`top`), the UART bridge (`bridge`) and its
protocol (`protocol`), board definitions (`boards`) and the synthesis flow
(`synth`, `python -m hw.board.synth`)."""

"""The one interface through which the driver reaches an accelerator.

The same driver code runs on every backend: the NumPy model
(`sw_driver.model.ModelTransport`), RTL cosimulation
(`sim.cosim.CosimTransport`) and, later, a board. A transport moves register
values and bytes of the accelerator's memory; it knows nothing about layers.
"""

from abc import ABC, abstractmethod

__all__ = ["Transport", "TransportError", "DoneTimeout"]


class TransportError(RuntimeError):
    """The backend failed (lost connection, simulator died, bad frame)."""


class DoneTimeout(TransportError):
    """The accelerator did not signal done within the allowed cycles."""


class Transport(ABC):
    """Register and memory access to one accelerator instance.

    Addresses are byte addresses. Register values are 32-bit unsigned.
    """

    @abstractmethod
    def write_reg(self, offset: int, value: int) -> None: ...

    @abstractmethod
    def read_reg(self, offset: int) -> int: ...

    @abstractmethod
    def write_mem(self, addr: int, data: bytes) -> None: ...

    @abstractmethod
    def read_mem(self, addr: int, length: int) -> bytes: ...

    @abstractmethod
    def wait_done(self, max_cycles: int) -> int:
        """Block until STATUS.done (the irq line) is set; return the cycles waited.

        Raises DoneTimeout when `max_cycles` pass first.
        """

    @property
    @abstractmethod
    def mem_size(self) -> int:
        """Bytes of accelerator-visible memory starting at address 0."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""The ``numa`` XAPI host plugin: protocol (no I/O), functions, and the boundary."""

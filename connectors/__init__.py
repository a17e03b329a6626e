"""Technology connectors: one module per kind of system, implementing hub Source/Sink."""

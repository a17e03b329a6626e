"""Department systems joining the hub: the Source/Sink seam, the runtime, adapters and bridges."""

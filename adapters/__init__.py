"""Department adapters: map a department system's native records to hub schemas."""

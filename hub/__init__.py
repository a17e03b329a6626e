"""govhub: a federated message-bus integration hub for cross-department government data sharing."""

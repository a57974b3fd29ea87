"""A mock DMP: an ITI-41 server with a patient registry, idempotency, faults and a control plane."""

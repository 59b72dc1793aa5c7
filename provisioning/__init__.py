"""Field-technician provisioning of a kiosk (device key, CSR, enrolment, trust store)."""

"""tocsin: streaming early warning for atrocity crimes that links every warning to a response."""

from tocsin.telemetry.noise import quiet_known_library_noise

quiet_known_library_noise()

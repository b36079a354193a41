"""Per-output buffers: `memory` and `disk`, behind one interface (`base.Buffer`)."""

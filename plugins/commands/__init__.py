"""Commands plugins add to the `collector` CLI that belong to no single input or output."""

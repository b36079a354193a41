"""`alert`: evaluates alert rules over the records routed to it (output.py); limits.py: none apply."""

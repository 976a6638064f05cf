"""Applications on the public API: the command line, the demo, drawing."""

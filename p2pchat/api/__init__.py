"""The JSON-lines API shared by the daemon's stdin, its control socket and the CLI."""

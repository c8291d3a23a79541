"""Tor for the onion transport: our own tor process and its control protocol."""

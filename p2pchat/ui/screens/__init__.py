"""Modal dialogs of the terminal UI: verifying a contact, help."""
